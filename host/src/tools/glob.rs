//! `Glob`: files of the workspace whose path matches a pattern, newest first. The walk is
//! ripgrep's (`ignore`: .gitignore honoured, symlinks not followed), the matching `globset`'s.

use super::{Workspace, text};
use serde_json::{Value, json};

pub(super) const DESCRIPTION: &str = "Finds files of the workspace by name pattern (`**/*.rs`, `src/**/*.{ts,tsx}`), newest first; .gitignore'd files are left out. `path` is the directory to search (default: the workspace).";

/// Paths handed back at most (Claude Code's limit); the model narrows the pattern for more.
const MAX_FILES: usize = 100;

pub(super) fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "The glob pattern to match files against"},
            "path": {"type": "string", "description": "The directory to search in (default: the workspace)"}
        },
        "required": ["pattern"],
        "additionalProperties": false
    })
}

pub(super) fn call(ws: &Workspace, input: &Value) -> Result<String, String> {
    let pattern = text(input, "pattern")?;
    let (root, is_dir) = ws.walk_root(input["path"].as_str())?;
    if !is_dir {
        return Err(format!("`{}` is not a directory", root.display()));
    }
    let matcher = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("`{pattern}` is not a glob pattern: {e}"))?
        .compile_matcher();
    let mut found: Vec<(std::time::SystemTime, std::path::PathBuf)> = Vec::new();
    for entry in walker(&root, ws).build() {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(&root) else {
            continue;
        };
        if matcher.is_match(rel) {
            let mtime = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .unwrap_or(std::time::UNIX_EPOCH);
            found.push((mtime, entry.path().to_path_buf()));
        }
    }
    if found.is_empty() {
        return Ok("No files found".to_string());
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let total = found.len();
    let mut out: String = found
        .iter()
        .take(MAX_FILES)
        .map(|(_, p)| format!("{}\n", p.display()))
        .collect();
    if total > MAX_FILES {
        out.push_str(&format!(
            "(Results are truncated: {total} files matched, the first {MAX_FILES} are shown. Use a more specific path or pattern.)\n"
        ));
    }
    Ok(out)
}

/// ripgrep's walk of a directory of the workspace: .gitignore, .ignore and .git/info/exclude
/// honoured (in a git repository or not), hidden files included but `.git` and wfhost's run
/// data (`.wfhost`) left out,
/// symlinks not followed (a link out of the workspace leads nowhere).
pub(super) fn walker(root: &std::path::Path, ws: &Workspace) -> ignore::WalkBuilder {
    let mut b = ignore::WalkBuilder::new(root);
    let hidden = ws.hidden().to_vec();
    b.hidden(false)
        .follow_links(false)
        .require_git(false)
        .filter_entry(move |e| {
            e.file_name() != ".git"
                && e.file_name() != super::workspace::HIDDEN
                && !hidden.iter().any(|h| e.path() == h)
        });
    b
}
