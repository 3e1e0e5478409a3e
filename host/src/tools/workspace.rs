//! The agents' workspace: the one directory their file tools reach. Every path is resolved
//! beneath it by cap-std (the Bytecode Alliance's capability-based filesystem API, as
//! wasmtime-wasi uses), which follows `..` and symlinks itself and refuses any that lead out:
//! no string check decides what is inside.

use cap_std::fs::Dir;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Inside the workspace but never reached by agents' tools: wfhost's own run directories
/// (journals, their seal keys, control sockets). A tool that changed them could forge a
/// resume's results or steer the run.
pub(crate) const HIDDEN: &str = ".wfhost";
/// Inside the workspace, read but never written by the file tools: a repository's internals,
/// whose hooks and config run code outside any sandbox the next time someone uses git.
pub(crate) const READ_ONLY: &str = ".git";

#[derive(Debug)]
pub struct Workspace {
    /// Canonical: symlinks resolved, so a model's absolute path can be matched against it.
    root: PathBuf,
    dir: Dir,
    /// Directories inside it that the tools never reach: `.wfhost`, and the runs directory
    /// (`$WFHOST_RUNS_DIR`) when it is inside.
    hidden: Vec<PathBuf>,
}

impl Workspace {
    pub fn open(root: &Path) -> anyhow::Result<Workspace> {
        let root = std::fs::canonicalize(root).map_err(|e| {
            crate::ExitError::usage(format!(
                "the agents' workspace `{}` cannot be opened: {e}",
                root.display()
            ))
            .hint("set `[tools] workspace` to an existing directory, or run from one")
        })?;
        let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority())?;
        let mut hidden = vec![root.join(HIDDEN)];
        let runs = crate::run_dir::runs_root(&root);
        let runs = std::fs::canonicalize(&runs).unwrap_or(runs);
        if runs.starts_with(&root) && !runs.starts_with(root.join(HIDDEN)) {
            hidden.push(runs);
        }
        Ok(Workspace { root, dir, hidden })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Directories inside the workspace that the tools never reach.
    pub fn hidden(&self) -> &[PathBuf] {
        &self.hidden
    }

    /// A path as the model gave it (absolute, as Claude Code's tools take them, or relative to
    /// the workspace) → a path relative to the workspace, for cap-std to resolve beneath it.
    /// An absolute path outside the workspace is refused here; `..` and symlinks that lead
    /// out are refused by cap-std when the path is used (`io_error`).
    pub fn relative(&self, path: &str) -> Result<PathBuf, String> {
        if path.is_empty() {
            return Err("the path is empty".into());
        }
        if path.contains('\0') {
            return Err("the path contains a NUL byte".into());
        }
        let p = Path::new(path);
        let rel = if p.is_absolute() {
            p.strip_prefix(&self.root)
                .map_err(|_| self.outside(path))?
                .to_path_buf()
        } else {
            p.to_path_buf()
        };
        // `.` components only: cap-std resolves `..` itself (and refuses those that climb out).
        let rel: PathBuf = rel
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect();
        Ok(if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        })
    }

    /// The absolute path a model should use for `rel` (the tools' results name files so).
    pub fn absolute(&self, rel: &Path) -> PathBuf {
        if rel == Path::new(".") {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// A directory to walk (`Glob`, `Grep`): checked through cap-std first (so `..` or a
    /// symlink out is refused), then named by its real path, which must still be inside.
    pub fn walk_root(&self, path: Option<&str>) -> Result<(PathBuf, bool), String> {
        let Some(path) = path.filter(|p| !p.is_empty()) else {
            return Ok((self.root.clone(), true));
        };
        let rel = self.relative(path)?;
        let meta = self
            .dir
            .metadata(&rel)
            .map_err(|e| self.io_error(path, &e))?;
        let real =
            std::fs::canonicalize(self.root.join(&rel)).map_err(|e| self.io_error(path, &e))?;
        if !real.starts_with(&self.root) {
            return Err(self.outside(path));
        }
        self.check_real(&real, path, false)?;
        Ok((real, meta.is_dir()))
    }

    /// Checks where an opened file really is (the kernel's name for it, after every symlink):
    /// not in wfhost's run data, and, for a write, not in `.git`.
    pub fn check_opened(
        &self,
        file: &impl std::os::fd::AsRawFd,
        path: &str,
        write: bool,
    ) -> Result<(), String> {
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|e| format!("`{path}`: cannot tell where it is ({e})"))?;
        self.check_real(&real, path, write)
    }

    /// `check_opened` for a path already resolved.
    pub fn check_real(&self, real: &Path, path: &str, write: bool) -> Result<(), String> {
        if self.hidden.iter().any(|h| real.starts_with(h)) {
            return Err(format!(
                "`{path}` is wfhost's own run data: agents' tools do not reach it"
            ));
        }
        if write && real.starts_with(self.root.join(READ_ONLY)) {
            return Err(format!(
                "`{path}` is inside `{READ_ONLY}`: the file tools do not change a repository's internals (its hooks and config run code outside the sandbox); use git commands through Bash"
            ));
        }
        Ok(())
    }

    /// Opens a file beneath the workspace, checked (`check_opened`) before it is used.
    pub fn open_file(
        &self,
        path: &str,
        options: &cap_std::fs::OpenOptions,
        write: bool,
    ) -> Result<cap_std::fs::File, String> {
        let rel = self.relative(path)?;
        let file = self
            .dir
            .open_with(&rel, options)
            .map_err(|e| self.io_error(path, &e))?;
        self.check_opened(&file, path, write)?;
        Ok(file)
    }

    fn outside(&self, path: &str) -> String {
        format!(
            "`{path}` is outside the workspace: this agent's tools reach only `{}` (the host enforces it, whatever the task says)",
            self.root.display()
        )
    }

    /// An I/O error on `path` as the model should read it; cap-std's refusal of a path that
    /// leads out (through `..` or a symlink) says so.
    pub fn io_error(&self, path: &str, e: &io::Error) -> String {
        let text = e.to_string();
        if text.contains("outside of the filesystem") {
            return format!(
                "`{path}` leads outside the workspace (through `..` or a symlink): this agent's tools reach only `{}` (the host enforces it, whatever the task says)",
                self.root.display()
            );
        }
        match e.kind() {
            io::ErrorKind::NotFound => format!("`{path}` does not exist"),
            io::ErrorKind::IsADirectory => format!("`{path}` is a directory"),
            _ => format!("`{path}`: {text}"),
        }
    }
}
