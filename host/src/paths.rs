//! Where wfhost keeps things on disk, decided in one place.
//!
//! - the **project root**: the nearest directory from the current one up that holds `.git`;
//!   outside a repository, the current directory is the project;
//! - the **user configuration directory**: `$XDG_CONFIG_HOME/wfhost`, else `~/.config/wfhost`
//!   (`config.toml`, `approvals.json`, personal `workflows/`);
//! - the **cache directory**: `$WFHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/wfhost`, else
//!   `~/.cache/wfhost`.
//!
//! Every other module asks here, so `wfhost save --personal`, `wfhost list` and
//! `wfhost run NAME` can never disagree about where a personal workflow lives.

use std::path::{Path, PathBuf};

/// The nearest directory from `cwd` up that holds `.git`, if any.
pub(crate) fn repository_root(cwd: &Path) -> Option<&Path> {
    cwd.ancestors().find(|d| d.join(".git").exists())
}

/// The project `cwd` belongs to: its repository root, else `cwd` itself.
pub(crate) fn project_root(cwd: &Path) -> &Path {
    repository_root(cwd).unwrap_or(cwd)
}

/// The directories from `cwd` up to the project root, closest first.
pub(crate) fn project_dirs(cwd: &Path) -> Vec<&Path> {
    match repository_root(cwd) {
        Some(root) => cwd
            .ancestors()
            .take_while(|d| d.starts_with(root))
            .collect(),
        // Outside a repository, only the current directory counts as the project.
        None => vec![cwd],
    }
}

/// The user's home directory.
pub(crate) fn home() -> Option<PathBuf> {
    dirs::home_dir()
}

/// `$XDG_CONFIG_HOME/wfhost`, else `~/.config/wfhost`.
pub(crate) fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home().map(|h| h.join(".config")))
        .map(|base| base.join("wfhost"))
}

/// Personal saved workflows: `<config dir>/workflows`.
pub(crate) fn personal_workflows() -> Option<PathBuf> {
    config_dir().map(|d| d.join("workflows"))
}

/// `$WFHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/wfhost`, else `~/.cache/wfhost`.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("WFHOST_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("wfhost")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_dirs_stop_at_the_repository_root() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        let deep = repo.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir(repo.join(".git")).unwrap();
        assert_eq!(project_root(&deep), repo.as_path());
        assert_eq!(
            project_dirs(&deep),
            vec![deep.as_path(), repo.join("a").as_path(), repo.as_path()]
        );
        let outside = t.path().join("plain");
        std::fs::create_dir(&outside).unwrap();
        assert_eq!(project_root(&outside), outside.as_path());
        assert_eq!(project_dirs(&outside), vec![outside.as_path()]);
    }
}
