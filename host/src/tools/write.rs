//! `Write`: creates or replaces a file of the workspace (its directories made as needed).

use super::{Workspace, text};
use serde_json::{Value, json};

pub(super) const DESCRIPTION: &str = "Writes a file of the workspace, replacing it if it exists (its directories are made as needed). `file_path` is an absolute path (or one relative to the workspace). Prefer Edit to change part of an existing file.";

pub(super) fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The absolute path of the file to write"},
            "content": {"type": "string", "description": "The content to write to the file"}
        },
        "required": ["file_path", "content"],
        "additionalProperties": false
    })
}

pub(super) fn call(ws: &Workspace, input: &Value) -> Result<String, String> {
    let path = text(input, "file_path")?;
    let content = text(input, "content")?;
    let rel = ws.relative(path)?;
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        ws.dir()
            .create_dir_all(parent)
            .map_err(|e| ws.io_error(path, &e))?;
    }
    let existed = ws.dir().metadata(&rel).is_ok();
    if !existed {
        // A new file: where it will be is checked before it is made (its directory, and no
        // dangling symlink in its place that would make it somewhere else).
        if ws.dir().symlink_metadata(&rel).is_ok() {
            return Err(format!(
                "`{path}` is a symlink to nothing: Write does not create files through one"
            ));
        }
        let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = match parent {
            Some(p) => ws.dir().open_dir(p).map_err(|e| ws.io_error(path, &e))?,
            None => ws.dir().try_clone().map_err(|e| ws.io_error(path, &e))?,
        };
        ws.check_opened(&dir, path, true)?;
    }
    // Opened without truncating, checked, and only then emptied: a path that turns out to
    // lead where tools may not write is left as it was.
    let file = ws.open_file(
        path,
        cap_std::fs::OpenOptions::new().write(true).create(true),
        true,
    )?;
    replace(file, content.as_bytes()).map_err(|e| ws.io_error(path, &e))?;
    Ok(format!(
        "{} `{}` ({} bytes)",
        if existed { "Replaced" } else { "Created" },
        ws.absolute(&rel).display(),
        content.len()
    ))
}

/// Replaces a file's content (opened by `Workspace::open`, and so checked).
pub(super) fn replace(mut file: cap_std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek as _, Write as _};
    file.set_len(0)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(bytes)?;
    file.flush()
}
