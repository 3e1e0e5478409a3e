//! `Grep`: searches the contents of the workspace's files with a regular expression — by
//! ripgrep's own crates (`ignore` walks, `grep-regex` matches, `grep-searcher` reads), every
//! file opened through the workspace's capability.

use super::{Workspace, number, text};
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use serde_json::{Value, json};

pub(super) const DESCRIPTION: &str = "Searches file contents with a regular expression (ripgrep's syntax). `output_mode`: `files_with_matches` (default: paths), `content` (matching lines, with `-n` line numbers, `-A`/`-B`/`-C` context), `count`. Narrow with `path`, `glob` (`*.rs`) or `type` (`rust`, `js`, `py`, …); `-i` ignores case; `multiline` lets `.` and patterns span lines; `head_limit` keeps the first N entries. .gitignore'd files are left out.";

/// Entries handed back when `head_limit` is not given: the result cap bounds the bytes too.
const DEFAULT_HEAD: usize = 500;

pub(super) fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "The regular expression to search for"},
            "path": {"type": "string", "description": "File or directory to search in (default: the workspace)"},
            "glob": {"type": "string", "description": "Glob pattern to filter files (e.g. \"*.js\", \"*.{ts,tsx}\")"},
            "type": {"type": "string", "description": "File type to search (e.g. js, py, rust)"},
            "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
            "-i": {"type": "boolean", "description": "Case insensitive search"},
            "-n": {"type": "boolean", "description": "Show line numbers (content mode; default true)"},
            "-A": {"type": "number", "description": "Lines to show after each match (content mode)"},
            "-B": {"type": "number", "description": "Lines to show before each match (content mode)"},
            "-C": {"type": "number", "description": "Lines to show before and after each match (content mode)"},
            "head_limit": {"type": "number", "description": "Keep only the first N lines or entries"},
            "multiline": {"type": "boolean", "description": "Let patterns span lines"}
        },
        "required": ["pattern"],
        "additionalProperties": false
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Content,
    Files,
    Count,
}

pub(super) fn call(ws: &Workspace, input: &Value) -> Result<String, String> {
    let pattern = text(input, "pattern")?;
    let mode = match input["output_mode"].as_str() {
        None | Some("files_with_matches") => Mode::Files,
        Some("content") => Mode::Content,
        Some("count") => Mode::Count,
        Some(other) => {
            return Err(format!(
                "`output_mode` `{other}` is not one of content, files_with_matches, count"
            ));
        }
    };
    let flag = |k: &str| input[k].as_bool().unwrap_or(false);
    let multiline = flag("multiline");
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(flag("-i"))
        .multi_line(true)
        .dot_matches_new_line(multiline)
        .line_terminator(if multiline { None } else { Some(b'\n') })
        .build(pattern)
        .map_err(|e| format!("`{pattern}` is not a regular expression: {e}"))?;
    let context = number(input, "-C")?;
    let before = number(input, "-B")?.or(context).unwrap_or(0);
    let after = number(input, "-A")?.or(context).unwrap_or(0);
    let head = number(input, "head_limit")?
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_HEAD);
    let mut searcher = SearcherBuilder::new()
        .binary_detection(BinaryDetection::quit(0))
        .line_number(true)
        .multi_line(multiline)
        .before_context(usize::try_from(before.min(100)).unwrap_or(0))
        .after_context(usize::try_from(after.min(100)).unwrap_or(0))
        .build();
    let numbers = input["-n"].as_bool().unwrap_or(true);

    let (root, is_dir) = ws.walk_root(input["path"].as_str())?;
    let files = files(ws, &root, is_dir, input)?;
    let mut lines: Vec<String> = Vec::new();
    let mut matched_files: Vec<(std::time::SystemTime, String, u64)> = Vec::new();
    for (path, mtime) in files {
        let Ok(rel) = path.strip_prefix(ws.root()) else {
            continue;
        };
        // Opened beneath the workspace: a file swapped for a symlink out since the walk saw it
        // is refused here.
        let Ok(file) = ws.dir().open(rel) else {
            continue;
        };
        if ws
            .check_opened(&file, &path.display().to_string(), false)
            .is_err()
        {
            continue;
        }
        let file = file.into_std();
        let shown = path.display().to_string();
        let mut sink = Collect {
            path: &shown,
            mode,
            numbers,
            lines: &mut lines,
            count: 0,
            limit: head,
        };
        if searcher.search_file(&matcher, &file, &mut sink).is_err() {
            continue;
        }
        let count = sink.count;
        if count > 0 {
            matched_files.push((mtime, shown, count));
        }
        if mode == Mode::Content && lines.len() >= head {
            break;
        }
    }
    if matched_files.is_empty() {
        return Ok(match mode {
            Mode::Files => "No files found".to_string(),
            _ => "No matches found".to_string(),
        });
    }
    Ok(match mode {
        Mode::Content => {
            let cut = lines.len() > head;
            lines.truncate(head);
            let mut out = lines.join("\n");
            if cut {
                out.push_str(&format!(
                    "\n(first {head} lines shown: raise `head_limit`, or narrow the search)"
                ));
            }
            out
        }
        Mode::Files => {
            matched_files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let total = matched_files.len();
            let mut out = format!("Found {total} file{}\n", if total == 1 { "" } else { "s" });
            for (_, p, _) in matched_files.iter().take(head) {
                out.push_str(p);
                out.push('\n');
            }
            out
        }
        Mode::Count => {
            let total: u64 = matched_files.iter().map(|(_, _, n)| n).sum();
            let mut out: String = matched_files
                .iter()
                .take(head)
                .map(|(_, p, n)| format!("{p}:{n}\n"))
                .collect();
            out.push_str(&format!(
                "\nFound {total} match{} across {} file{}",
                if total == 1 { "" } else { "es" },
                matched_files.len(),
                if matched_files.len() == 1 { "" } else { "s" }
            ));
            out
        }
    })
}

/// The files to search: the one named, or ripgrep's walk of the directory with `glob` and
/// `type` applied, each with its modification time.
fn files(
    ws: &Workspace,
    root: &std::path::Path,
    is_dir: bool,
    input: &Value,
) -> Result<Vec<(std::path::PathBuf, std::time::SystemTime)>, String> {
    let mtime = |m: Option<std::fs::Metadata>| {
        m.and_then(|m| m.modified().ok())
            .unwrap_or(std::time::UNIX_EPOCH)
    };
    if !is_dir {
        return Ok(vec![(
            root.to_path_buf(),
            mtime(std::fs::metadata(root).ok()),
        )]);
    }
    let mut walk = super::glob::walker(root, ws);
    if let Some(glob) = input["glob"].as_str().filter(|g| !g.is_empty()) {
        let mut o = ignore::overrides::OverrideBuilder::new(root);
        o.add(glob)
            .map_err(|e| format!("`glob` `{glob}` is not a glob pattern: {e}"))?;
        walk.overrides(o.build().map_err(|e| e.to_string())?);
    }
    if let Some(kind) = input["type"].as_str().filter(|t| !t.is_empty()) {
        let mut t = ignore::types::TypesBuilder::new();
        t.add_defaults();
        t.select(kind);
        walk.types(t.build().map_err(|e| format!("`type` `{kind}`: {e}"))?);
    }
    let mut out = Vec::new();
    for entry in walk.build() {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_some_and(|t| t.is_file()) {
            out.push((entry.path().to_path_buf(), mtime(entry.metadata().ok())));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Collects what one file contributes: lines (content mode, ripgrep's `path:n:line` and
/// `path-n-context` format) or only the count of matching lines.
struct Collect<'a> {
    path: &'a str,
    mode: Mode,
    numbers: bool,
    lines: &'a mut Vec<String>,
    count: u64,
    limit: usize,
}

impl Collect<'_> {
    fn push(&mut self, sep: char, number: Option<u64>, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches(['\n', '\r']);
        for (i, line) in text.split('\n').enumerate() {
            let n = number.map(|n| n + i as u64);
            self.lines.push(match (self.numbers, n) {
                (true, Some(n)) => format!("{}{sep}{n}{sep}{line}", self.path),
                _ => format!("{}{sep}{line}", self.path),
            });
        }
    }
}

impl Sink for Collect<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, m: &SinkMatch<'_>) -> Result<bool, Self::Error> {
        self.count += 1;
        match self.mode {
            // One match is enough to list the file.
            Mode::Files => Ok(false),
            Mode::Count => Ok(true),
            Mode::Content => {
                self.push(':', m.line_number(), m.bytes());
                Ok(self.lines.len() <= self.limit)
            }
        }
    }

    fn context(&mut self, _: &Searcher, c: &SinkContext<'_>) -> Result<bool, Self::Error> {
        if self.mode == Mode::Content {
            self.push('-', c.line_number(), c.bytes());
        }
        Ok(true)
    }

    fn context_break(&mut self, _: &Searcher) -> Result<bool, Self::Error> {
        if self.mode == Mode::Content {
            self.lines.push("--".to_string());
        }
        Ok(true)
    }
}
