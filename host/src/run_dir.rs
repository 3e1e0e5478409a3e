//! A run's directory, `.wfhost/runs/<run_id>/` under the project root (`$WFHOST_RUNS_DIR`
//! overrides where runs live). This type owns the layout; nothing else joins file names onto a
//! run's path.
//!
//! ```text
//! .wfhost/runs/
//!   .gitignore              `*`: run state is local, never committed
//!   <run_id>/
//!     journal.jsonl         append-only records (journal.rs)
//!     script.js             the script as it ran (for `wfhost resume`)
//!     args.json             its `args`
//!     transcripts.jsonl     each agent call's request, usage, cost and duration
//!     prompts/<blake3>      long prompts, stored once however many agents sent them
//!     transcripts/          (runs written before transcripts.jsonl: a file per call)
//!     lock                  held (flock) by the process running the run
//!     control.sock          the live run's control socket (0600; docs/control.md)
//!     events.jsonl          the event stream (docs/events.md): `wfhost logs`
//!     output.log            a detached run's stdout and stderr
//!     journal.key           the run's key for the records' MACs (0600)
//! ```

use crate::ExitError;
use anyhow::Result;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One run's directory (it may not exist yet: a new run creates it when its journal opens).
#[derive(Debug, Clone)]
pub(crate) struct RunDir {
    id: String,
    path: PathBuf,
}

/// Where the runs of the project containing `cwd` live.
pub(crate) fn runs_root(cwd: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("WFHOST_RUNS_DIR") {
        return PathBuf::from(d);
    }
    crate::paths::project_root(cwd).join(".wfhost").join("runs")
}

impl RunDir {
    /// The directory run `id` has (or will have). Refuses ids that could name another path.
    pub(crate) fn new(cwd: &Path, id: &str) -> Result<RunDir> {
        if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
            return Err(ExitError::usage(format!("`{id}` is not a run id"))
                .hint("`wfhost runs` lists the runs of this project")
                .into());
        }
        Ok(RunDir {
            id: id.to_string(),
            path: runs_root(cwd).join(id),
        })
    }

    /// The run directory at `path` (its name is the run id).
    #[cfg(test)]
    pub(crate) fn at(path: PathBuf) -> RunDir {
        RunDir {
            id: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path,
        }
    }

    /// An existing run: the one "no run" error every command gives (exit 2).
    /// The run a user named: its id, a prefix of one id (`20261204T1530`), or `@last` (the
    /// newest run).
    pub(crate) fn existing(cwd: &Path, id: &str) -> Result<RunDir> {
        if id == "@last" {
            return RunDir::list(cwd).into_iter().next().ok_or_else(|| {
                ExitError::usage(format!("no runs in `{}`", runs_root(cwd).display()))
                    .hint("start one with `wfhost run SCRIPT`")
                    .into()
            });
        }
        let dir = RunDir::new(cwd, id)?;
        if !dir.journal().is_file() && !id.is_empty() {
            let mut matches: Vec<RunDir> = RunDir::list(cwd)
                .into_iter()
                .filter(|r| r.id.starts_with(id))
                .collect();
            match matches.len() {
                1 => return Ok(matches.remove(0)),
                0 => {}
                n => {
                    let shown: Vec<&str> = matches.iter().take(5).map(|r| r.id.as_str()).collect();
                    return Err(ExitError::usage(format!(
                        "`{id}` names {n} runs: {}{}",
                        shown.join(", "),
                        if n > 5 { ", …" } else { "" }
                    ))
                    .hint("give more of the run id (`wfhost runs` lists them), or `@last` for the newest")
                    .into());
                }
            }
        }
        dir.refuse_foreign()?;
        if dir.journal().is_file() {
            // A run directory made by an older wfhost (0755) is made private when it is opened.
            let _ = private(&dir.path, 0o700);
        }
        if !dir.journal().is_file() {
            return Err(ExitError::usage(format!(
                "no run `{id}` in `{}`",
                runs_root(cwd).display()
            ))
            .hint("`wfhost runs` lists the runs of this project")
            .into());
        }
        Ok(dir)
    }

    /// Opens (creating, appending) a file of a run directory, readable by its owner only.
    pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        // One made by an older wfhost (0644) is made private too.
        private(path, 0o600)?;
        Ok(f)
    }

    /// Writes a whole file of a run directory, readable by its owner only.
    pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        private(path, 0o600)?;
        f.write_all(bytes)
    }

    /// Every run of the project, newest first (run ids start with their start time).
    pub(crate) fn list(cwd: &Path) -> Vec<RunDir> {
        let mut runs: Vec<RunDir> = std::fs::read_dir(runs_root(cwd))
            .map(|rd| {
                rd.filter_map(std::result::Result::ok)
                    .map(|e| RunDir {
                        id: e.file_name().to_string_lossy().into_owned(),
                        path: e.path(),
                    })
                    .filter(|r| r.journal().is_file())
                    .collect()
            })
            .unwrap_or_default();
        runs.sort_by(|a, b| b.id.cmp(&a.id));
        runs
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Refuses (exit 77) a run directory that is another user's, or that holds a symbolic link
    /// where the run keeps a file: resuming another user's run would run a script that user can
    /// edit, and a planted link would make wfhost read (or write) a file of the planter's
    /// choosing. A directory this user cannot even look at is refused the same way (it was an
    /// internal error, exit 70).
    fn refuse_foreign(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = match std::fs::symlink_metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(ExitError::refused(format!(
                    "run `{}` cannot be opened: {e}",
                    self.id
                ))
                .hint("a run directory is its owner's alone (0700): run wfhost as the user who started the run")
                .into());
            }
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.file_type().is_symlink() || meta.uid() != me {
            return Err(ExitError::refused(format!(
                "run `{}` belongs to uid {}, not to you (uid {me}): its script and journal are that user's to edit",
                self.id,
                meta.uid()
            ))
            .hint(format!(
                "to run the same script as yourself, copy it and `wfhost run` it: `{}`",
                self.script().display()
            ))
            .into());
        }
        for file in [
            self.journal(),
            self.journal_key(),
            self.script(),
            self.args(),
            self.events(),
            self.output(),
            self.transcripts_log(),
            self.path.join("result.json"),
        ] {
            if std::fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(ExitError::refused(format!(
                    "`{}` is a symbolic link: a run directory holds plain files, so something other than wfhost put it there",
                    file.display()
                ))
                .hint("look at who made it; remove the link, or the run directory")
                .into());
            }
        }
        Ok(())
    }
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
    pub(crate) fn journal(&self) -> PathBuf {
        self.path.join("journal.jsonl")
    }
    pub(crate) fn script(&self) -> PathBuf {
        self.path.join("script.js")
    }
    pub(crate) fn args(&self) -> PathBuf {
        self.path.join("args.json")
    }
    pub(crate) fn transcripts(&self) -> PathBuf {
        self.path.join("transcripts")
    }
    pub(crate) fn transcripts_log(&self) -> PathBuf {
        self.path.join("transcripts.jsonl")
    }
    pub(crate) fn prompts(&self) -> PathBuf {
        self.path.join("prompts")
    }
    pub(crate) fn prompt(&self, blake3_hex: &str) -> PathBuf {
        self.prompts().join(blake3_hex)
    }
    pub(crate) fn lock(&self) -> PathBuf {
        self.path.join("lock")
    }
    pub(crate) fn control_socket(&self) -> PathBuf {
        self.path.join("control.sock")
    }
    pub(crate) fn events(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }
    pub(crate) fn output(&self) -> PathBuf {
        self.path.join("output.log")
    }
    /// The run's journal key: every record carries a MAC under it (journal/seal.rs).
    pub(crate) fn journal_key(&self) -> PathBuf {
        self.path.join("journal.key")
    }

    /// Creates the directory (and the runs root's `.gitignore`).
    pub(crate) fn create(&self) -> Result<()> {
        use anyhow::Context as _;
        std::fs::create_dir_all(&self.path).with_context(|| {
            format!("cannot create the run directory `{}`", self.path.display())
        })?;
        // Private: events, transcripts, args and output are the user's, not every local
        // user's (the files inside are 0600 as well: `private_file`).
        for dir in [Some(self.path.as_path()), self.path.parent()]
            .into_iter()
            .flatten()
        {
            private(dir, 0o700)?;
        }
        if let Some(root) = self.path.parent() {
            let ignore = root.join(".gitignore");
            if !ignore.exists() {
                std::fs::write(
                    &ignore,
                    "# wfhost run journals: local state, never committed\n*\n",
                )?;
            }
        }
        Ok(())
    }

    /// True when a live process holds the run's lock.
    pub(crate) fn is_running(&self) -> bool {
        match File::open(self.lock()) {
            Ok(f) => f.try_lock_shared().is_err(),
            Err(_) => false,
        }
    }
}

/// Sets `path`'s permission bits to `mode` unless they are that already (a directory or file
/// that is not ours is left as it is: its owner decides).
fn private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let meta = std::fs::symlink_metadata(path)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me && meta.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}
