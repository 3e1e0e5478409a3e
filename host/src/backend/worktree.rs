//! `agent(prompt, {isolation: "worktree"})`: the agent works in a git worktree of its own,
//! made from the run directory's `HEAD` before the call and removed after it unless the agent
//! changed something (then it is kept and the run's log says where).
//!
//! As on the reference: the agent's prompt gets the reference's notice naming the worktree
//! (every backend receives it; the journal key is taken before, over the script's prompt, so
//! a resume finds the answer although each worktree has a new path), and outside a git
//! repository `agent()` throws the reference's `Cannot create agent worktree…` before any agent
//! is started (`Check`, at the boundary). Unlike the reference, the worktree is also the
//! workspace the agent's own tools are confined to (tools::Workspace), not only its `cwd`.

use super::{AgentError, AgentRequest};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where a backend's agents work, and so where an isolated agent's worktree is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// On this machine, in the run's directory: the scheduler makes the worktree.
    Here,
    /// On another machine (a NATS worker), which makes the worktree in its own directory: the
    /// run host neither checks nor makes one.
    Elsewhere,
    /// Nowhere (`plan`, a replay of recorded answers): checked as for `Here`, never made.
    Nowhere,
}

/// The reference's message when `agent({isolation: "worktree"})` is called outside a git
/// repository.
pub(crate) const NOT_A_REPOSITORY: &str = "Cannot create agent worktree: not in a git repository and no WorktreeCreate hooks are configured. Configure WorktreeCreate/WorktreeRemove hooks in settings.json to use worktree isolation with other VCS systems.";

/// The reference's message in a repository whose `HEAD` has no commit yet.
pub(crate) const NO_COMMIT: &str = "Failed to resolve base branch \"HEAD\": git rev-parse failed";

/// Whether the run's directory can give its agents worktrees: asked of git once per run, at the
/// first isolated `agent()` call, so a script outside a repository gets the reference's error
/// before any agent starts (and a script that never asks for isolation never runs git).
#[derive(Debug)]
pub(crate) struct Check {
    /// `None`: the agents work elsewhere (a NATS worker checks its own directory).
    cwd: Option<PathBuf>,
    answer: OnceLock<Result<(), &'static str>>,
}

impl Check {
    pub(crate) fn new(cwd: &Path, place: Place) -> Check {
        Check {
            cwd: (place != Place::Elsewhere).then(|| cwd.to_path_buf()),
            answer: OnceLock::new(),
        }
    }

    /// `Err(message)` when an isolated agent cannot be given a worktree here.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        let Some(cwd) = &self.cwd else {
            return Ok(());
        };
        *self.answer.get_or_init(|| {
            let git = |args: &[&str]| {
                std::process::Command::new("git")
                    .arg("-C")
                    .arg(cwd)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !git(&["rev-parse", "--is-inside-work-tree"]) {
                Err(NOT_A_REPOSITORY)
            } else if !git(&["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]) {
                Err(NO_COMMIT)
            } else {
                Ok(())
            }
        })
    }
}

/// Why: git takes lock files under `.git/` (`config`, `worktrees/`) while it adds or removes a
/// worktree, and a fan-out of isolated agents would have two `git worktree add` in one
/// repository fail on each other's lock. Serialising them costs a few milliseconds per agent.
static GIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One agent's worktree. Dropped before `finish` (the call was killed, stalled or stopped), it
/// is cleaned up the same way on a thread of its own.
#[derive(Debug)]
pub(crate) struct Worktree(Option<Made>);

#[derive(Debug, Clone)]
struct Made {
    /// The directory the agent was started from (the run's, or a worker's).
    parent: PathBuf,
    /// The worktree's root.
    root: PathBuf,
    /// Where in it the agent works: the same place relative to the root as `parent` is in its
    /// repository.
    workdir: PathBuf,
}

impl Worktree {
    /// Makes a worktree of `parent`'s repository at its `HEAD` (detached), in the temporary
    /// directory, outside the repository (so it is never an untracked directory of the parent).
    pub(crate) async fn make(parent: &Path) -> Result<Worktree, AgentError> {
        let parent = parent.to_path_buf();
        tokio::task::spawn_blocking(move || Made::new(parent))
            .await
            .map_err(|e| AgentError::permanent(format!("cannot create agent worktree: {e}")))?
            .map(|made| Worktree(Some(made)))
            .map_err(|e| AgentError::permanent(format!("cannot create agent worktree: {e}")))
    }

    /// The request the backend receives: the script's, with the reference's notice after the
    /// prompt and the worktree as the agent's workspace.
    pub(crate) fn request(&self, request: &AgentRequest) -> AgentRequest {
        let mut isolated = request.clone();
        if let Some(made) = &self.0 {
            isolated.prompt = format!("{}\n\n{}", request.prompt, made.notice());
            isolated.workspace = Some(made.workdir.clone());
        }
        isolated
    }

    /// After the call: a worktree the agent changed (or that cannot be read) is kept, and the
    /// note for the run's log says where; an unchanged one is removed.
    pub(crate) async fn finish(mut self) -> Option<String> {
        let made = self.0.take()?;
        tokio::task::spawn_blocking(move || made.finish())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        if let Some(made) = self.0.take() {
            std::thread::spawn(move || made.finish());
        }
    }
}

impl Made {
    fn new(parent: PathBuf) -> Result<Made, String> {
        let toplevel = PathBuf::from(git(&parent, &["rev-parse", "--show-toplevel"])?.trim());
        let root = std::env::temp_dir().join(format!("wfhost-worktree-{:016x}", fastrand::u64(..)));
        {
            let _one_at_a_time = GIT
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            git(
                &parent,
                &[
                    "worktree",
                    "add",
                    "--detach",
                    &root.display().to_string(),
                    "HEAD",
                ],
            )?;
        }
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let relative = canonical(&parent)
            .strip_prefix(canonical(&toplevel))
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let workdir = if relative.as_os_str().is_empty() {
            root.clone()
        } else {
            root.join(relative)
        };
        Ok(Made {
            parent,
            workdir,
            root,
        })
    }

    /// The reference's notice (Claude Code's `buildWorktreeNotice`).
    fn notice(&self) -> String {
        format!(
            "You've inherited the conversation context above from a parent agent working in {}. You are operating in an isolated git worktree at {} — same repository, same relative file structure, separate working copy. Paths in the inherited context refer to the parent's working directory; translate them to your worktree root. Re-read files before editing if the parent may have modified them since they appear in the context. Your changes stay in this worktree and will not affect the parent's files.",
            self.parent.display(),
            self.workdir.display()
        )
    }

    fn finish(self) -> Option<String> {
        let changed = git(&self.root, &["status", "--porcelain"])
            .map(|s| !s.trim().is_empty())
            .unwrap_or(true);
        if changed {
            return Some(format!(
                "changes kept in worktree {}",
                self.workdir.display()
            ));
        }
        let _one_at_a_time = GIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = git(
            &self.parent,
            &[
                "worktree",
                "remove",
                "--force",
                &self.root.display().to_string(),
            ],
        );
        None
    }
}

/// Runs `git -C dir args…`: its stdout, or its stderr as the error.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
