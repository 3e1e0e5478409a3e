//! Saved workflows: where `workflow("name")` and `wfhost run NAME` look.
//!
//! Project workflows live in `.wfhost/workflows/` and `.claude/workflows/` of every directory
//! from the current one up to the repository root (the closest wins); personal ones in
//! `$XDG_CONFIG_HOME/wfhost/workflows/` (default `~/.config/wfhost/workflows/`) and
//! `~/.claude/workflows/`. Project beats personal. A
//! workflow is `NAME.js`. Symlinked files or folders are refused: a saved workflow is code that
//! runs on `wfhost run NAME`, and a link can point anywhere.

use crate::script::Script;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A built-in agent type: its name, what it is for, and the tools it is offered (empty: all
/// the run allows). Its model is the call's or the backend's: wfhost maps no type to a model.
pub(crate) struct Builtin {
    pub name: &'static str,
    pub description: &'static str,
    pub tools: &'static [&'static str],
}

/// The agent types every run has: the reference's built-ins (Claude Code 2.1's), each with the
/// tools it has there. On the `messages` backend its tools narrow the run's (`--tools`); on
/// `claude` they are pre-approved; `command` receives them with the request (docs/agents.md).
pub(crate) const BUILTIN_AGENTS: [Builtin; 5] = [
    Builtin {
        name: "general-purpose",
        description: "any task: research, code, multi-step work",
        tools: &[],
    },
    Builtin {
        name: "Explore",
        description: "fast read-only search: find files, symbols, where things are",
        tools: &["Read", "Glob", "Grep"],
    },
    Builtin {
        name: "Plan",
        description: "think a change through and write a plan, without editing",
        tools: &["Read", "Glob", "Grep"],
    },
    Builtin {
        name: "claude",
        description: "the default agent, as a session starts one: every tool",
        tools: &[],
    },
    Builtin {
        name: "statusline-setup",
        description: "configure Claude Code's status line (reads and edits its settings)",
        tools: &["Read", "Edit"],
    },
];

/// An agent definition: a built-in, or a `.claude/agents/NAME.md` file.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AgentDef {
    pub name: String,
    pub description: String,
    /// Tools it may use (`tools:` in the front matter; empty: the backend's defaults).
    pub tools: Vec<String>,
    pub model: Option<String>,
    /// Its system prompt (the file's body; empty for the built-ins).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prompt: String,
    /// Where it is defined (`None`: built in).
    pub path: Option<PathBuf>,
}

impl AgentDef {
    /// A definition file: `---` front matter of `key: value` lines, `---`, then the body.
    /// `tools` is a comma-separated list or a `[a, b]` list; the name defaults to the file's.
    pub fn parse(text: &str, path: &Path) -> AgentDef {
        let (front, body) = match text.strip_prefix("---") {
            Some(rest) => match rest.split_once("\n---") {
                Some((front, body)) => (front, body.trim_start_matches(['-']).trim()),
                None => ("", text.trim()),
            },
            None => ("", text.trim()),
        };
        let field = |key: &str| {
            front.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
            })
        };
        let tools = field("tools")
            .map(|t| {
                t.trim_matches(['[', ']'])
                    .split(',')
                    .map(|x| x.trim().trim_matches(['"', '\'']).to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        AgentDef {
            name: field("name").filter(|n| !n.is_empty()).unwrap_or_else(|| {
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string()
            }),
            description: field("description").unwrap_or_default(),
            tools,
            model: field("model").filter(|m| !m.is_empty() && m != "inherit"),
            prompt: body.to_string(),
            path: Some(path.to_path_buf()),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    Project,
    Personal,
    /// Ships with wfhost (`host/workflows/`).
    #[serde(rename = "built-in")]
    Builtin,
}

/// Workflows that ship with wfhost, listed as built-in and run by name like saved ones; a
/// project or personal workflow of the same name wins.
pub(crate) const BUILTIN_WORKFLOWS: [(&str, &str); 2] = [
    ("code-review", include_str!("../workflows/code-review.js")),
    (
        "deep-research",
        include_str!("../workflows/deep-research.js"),
    ),
];

/// Where the built-in workflows are written as files (in the cache directory), so everything
/// that reads a saved workflow reads them the same way.
fn builtin_dir() -> Option<PathBuf> {
    Some(
        crate::paths::cache_dir()?.join(format!("builtin-workflows-{}", env!("CARGO_PKG_VERSION"))),
    )
}

/// Writes the built-in workflows into `dir` where they are missing or differ. Only when a
/// listing needs them: a run's start reads no workflow directory.
fn materialize_builtins(dir: &Path) {
    for (name, source) in BUILTIN_WORKFLOWS {
        let path = dir.join(format!("{name}.js"));
        if std::fs::read_to_string(&path).ok().as_deref() != Some(source)
            && std::fs::create_dir_all(dir).is_ok()
        {
            let _ = std::fs::write(&path, source);
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Resolver {
    cwd: PathBuf,
    /// Search order: closest project directory first, personal last.
    dirs: Vec<(PathBuf, Scope)>,
    /// The agent definitions, read once (a run checks every `agent({agentType})` against them).
    agents: std::sync::OnceLock<Vec<AgentDef>>,
}

/// One saved workflow file.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub scope: Scope,
    /// The path of the entry this one hides, if any (same name further away).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadows: Option<PathBuf>,
}

impl Resolver {
    pub(crate) fn discover(cwd: &Path) -> Resolver {
        let mut dirs = Vec::new();
        for dir in crate::paths::project_dirs(cwd) {
            for sub in [".wfhost/workflows", ".claude/workflows"] {
                dirs.push((dir.join(sub), Scope::Project));
            }
        }
        if let Some(personal) = crate::paths::personal_workflows() {
            dirs.push((personal, Scope::Personal));
        }
        if let Some(home) = crate::paths::home() {
            dirs.push((home.join(".claude/workflows"), Scope::Personal));
        }
        if let Some(builtin) = builtin_dir() {
            dirs.push((builtin, Scope::Builtin));
        }
        Resolver {
            cwd: cwd.to_path_buf(),
            dirs,
            agents: std::sync::OnceLock::new(),
        }
    }

    /// Every saved workflow, in search order; later entries with a name already seen are
    /// marked as shadowed (they are listed, but never run by name).
    pub(crate) fn list(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for (dir, scope) in &self.dirs {
            if *scope == Scope::Builtin {
                materialize_builtins(dir);
            }
            for path in files_in(dir, "js") {
                let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned)
                else {
                    continue;
                };
                if let Some(winner) = out
                    .iter_mut()
                    .find(|e| e.name == name && e.shadows.is_none())
                {
                    winner.shadows = Some(path);
                    continue;
                }
                out.push(Entry {
                    name,
                    path,
                    scope: *scope,
                    shadows: None,
                });
            }
        }
        out
    }

    /// The agent types a script may name in `agent({agentType})`: the built-ins, then the
    /// definitions in `.claude/agents/*.md` of the project (nearest first, up to the repository
    /// root) and of the user (`~/.claude/agents/`), as Claude Code reads them: YAML front matter
    /// (`name`, `description`, `tools`, `model`) and the body as the agent's system prompt. A
    /// name seen before hides a later one.
    pub(crate) fn agent_defs(&self) -> &[AgentDef] {
        self.agents.get_or_init(|| {
            let mut defs: Vec<AgentDef> = BUILTIN_AGENTS
                .iter()
                .map(|b| AgentDef {
                    name: b.name.to_string(),
                    description: b.description.to_string(),
                    tools: b.tools.iter().map(|t| (*t).to_string()).collect(),
                    model: None,
                    prompt: String::new(),
                    path: None,
                })
                .collect();
            let mut dirs: Vec<PathBuf> = crate::paths::project_dirs(&self.cwd)
                .into_iter()
                .map(|d| d.join(".claude/agents"))
                .collect();
            if let Some(home) = crate::paths::home() {
                dirs.push(home.join(".claude/agents"));
            }
            for path in dirs.iter().flat_map(|dir| files_in(dir, "md")) {
                let Ok(text) = read_script(&path) else {
                    continue;
                };
                let def = AgentDef::parse(&text, &path);
                if !def.name.is_empty() && !defs.iter().any(|d| d.name == def.name) {
                    defs.push(def);
                }
            }
            defs
        })
    }

    /// The definition `agent({agentType})` names, or the reference's message listing the
    /// types there are: built-in and project ones together, sorted as JavaScript's
    /// `localeCompare` sorts them (ICU's collation: `alpha` before `Beta`, unlike byte order).
    pub(crate) fn agent_def(&self, agent_type: &str) -> Result<&AgentDef, String> {
        let defs = self.agent_defs();
        defs.iter().find(|d| d.name == agent_type).ok_or_else(|| {
            let mut names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            locale_sort(&mut names);
            format!(
                "agent({{agentType}}): agent type '{agent_type}' not found. Available agents: {}",
                names.join(", ")
            )
        })
    }

    /// The file of the workflow called `name`.
    pub(crate) fn find(&self, name: &str) -> Result<PathBuf, String> {
        let entry = self.list().into_iter().find(|e| e.name == name);
        match entry {
            Some(e) if symlinked(&e.path, 3) => Err(format!(
                "workflow `{name}` is a symlink; saved workflows must be regular files (see `wfhost list`)"
            )),
            Some(e) => Ok(e.path),
            None => {
                // Built-ins first, as the reference lists its bundled workflows.
                let mut entries = self.list();
                entries.sort_by_key(|e| e.scope != Scope::Builtin);
                let names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
                let available = if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                };
                Err(format!(
                    "workflow('{name}'): no workflow with that name. Available: {available}"
                ))
            }
        }
    }

    /// `workflow(name | {scriptPath})` from inside a script: resolve, read and check the child.
    /// The script is untrusted: nothing here may hang (a FIFO), and no message may tell it
    /// about the host's filesystem (absolute paths, whether a path outside the project exists).
    pub(crate) fn load_child(&self, request: &Value) -> Result<Script, String> {
        let (label, origin, source) = if let Some(name) = request["name"].as_str() {
            let label = format!("workflow('{name}')");
            let path = self.find(name)?;
            let source = read_script(&path)
                .map_err(|why| format!("{label}: the saved workflow cannot be read: {why}"))?;
            (label, format!("workflow '{name}'"), source)
        } else if let Some(p) = request["scriptPath"].as_str() {
            let label = format!("workflow({{scriptPath: '{p}'}})");
            let refuse = || {
                format!(
                    "{label}: no workflow script at that path; scriptPath must be a relative path (without `..`) to a regular `.js` file in the current directory or below, not a symlink"
                )
            };
            let path = self.script_path(p).ok_or_else(refuse)?;
            let source = read_script(&path).map_err(|_| refuse())?;
            (label, p.to_string(), source)
        } else {
            return Err(
                "workflow() expects a workflow name (string) or {scriptPath: string}".into(),
            );
        };
        Script::parse(&origin, &source).map_err(|r| format!("{label}: {}", r.render()))
    }

    /// Where a `scriptPath` points, decided from the string alone (so the answer says nothing
    /// about what exists on disk): relative, no `..`, a `.js` file, no symlink on the way.
    fn script_path(&self, p: &str) -> Option<PathBuf> {
        use std::path::Component;
        let rel = Path::new(p);
        let plain = rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        let js = rel
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("js"));
        if !plain || !js {
            return None;
        }
        let joined = self.cwd.join(rel);
        if symlinked(&joined, rel.components().count()) {
            return None;
        }
        Some(joined)
    }
}

/// Reads a workflow script without ever blocking: opened non-blocking and without following a
/// final symlink, refused unless it is a regular file (a FIFO would block forever, a device
/// would never end), and no larger than `MAX_SCRIPT_BYTES`.
pub(crate) fn read_script(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| e.kind().to_string())?;
    let meta = file.metadata().map_err(|e| e.kind().to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let max = crate::limits::MAX_SCRIPT_BYTES;
    let mut source = String::new();
    file.take(max as u64 + 1)
        .read_to_string(&mut source)
        .map_err(|e| e.kind().to_string())?;
    if source.len() > max {
        return Err(format!("larger than the {max} bytes a script may have"));
    }
    Ok(source)
}

/// The `.ext` files of `dir`, sorted; none when `dir` (or its parent) is a symlink or missing.
fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    if symlinked(dir, 2) {
        return Vec::new();
    }
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

/// True when `path` or one of its `levels - 1` parent directories is a symlink.
pub(crate) fn symlinked(path: &Path, levels: usize) -> bool {
    path.ancestors()
        .take(levels)
        .any(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()))
}

/// Saves a script as a workflow (`wfhost save`, and `save` on a run's control socket): checks
/// it, then writes `.wfhost/workflows/NAME.js` of the project containing `cwd`, or the personal
/// directory. `Ok(Err(_))`: the script itself was rejected. Returns its name and where it went.
pub(crate) fn save(
    origin: &str,
    source: &str,
    cwd: &Path,
    personal: bool,
    force: bool,
) -> anyhow::Result<Result<(String, std::path::PathBuf), crate::script::Rejection>> {
    use crate::ExitError;
    use anyhow::{anyhow, bail};
    let script = match Script::parse(origin, source) {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    let name = script.meta.name.clone();
    if name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!(
            ExitError::script(format!("meta.name `{name}` cannot be a file name"))
                .hint("use letters, digits, `-`, `_` and `.` (e.g. `review-files`)")
        );
    }
    let dir = if personal {
        crate::paths::personal_workflows()
            .ok_or_else(|| anyhow!("no home directory for --personal"))?
    } else {
        crate::paths::project_root(cwd).join(".wfhost/workflows")
    };
    for d in [&dir, &dir.parent().map(PathBuf::from).unwrap_or_default()] {
        if std::fs::symlink_metadata(d).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!(
                "`{}` is a symlink; wfhost refuses to write saved workflows through links",
                d.display()
            );
        }
    }
    let dest = dir.join(format!("{name}.js"));
    if dest.exists() && !force {
        bail!(
            ExitError::usage(format!(
                "a workflow `{name}` is already saved at `{}`",
                dest.display()
            ))
            .hint("pass `--force` to replace it")
        );
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(&dest, source)?;
    Ok(Ok((name, dest)))
}

/// Sorts as `names.sort((a, b) => a.localeCompare(b))` does in the reference (Node's ICU, root
/// collation, default strength); byte order where no collator can be made.
fn locale_sort(names: &mut [&str]) {
    use icu_collator::{Collator, options::CollatorOptions};
    match Collator::try_new(Default::default(), CollatorOptions::default()) {
        Ok(collator) => names.sort_by(|a, b| collator.compare(a, b)),
        Err(_) => names.sort_unstable(),
    }
}
