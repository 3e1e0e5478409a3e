//! `Read`: a file of the workspace, as numbered lines (`cat -n`), in parts for large files.

use super::{Workspace, number, text};
use serde_json::{Value, json};
use std::io::Read as _;

pub(super) const DESCRIPTION: &str = "Reads a file of the workspace. `file_path` is an absolute path (or one relative to the workspace). Lines come back numbered (`cat -n`), at most 2000 from `offset` (1-based); lines longer than 2000 characters are cut. Read a large file in parts with `offset` and `limit`.";

/// Lines handed back when `limit` is not given (Claude Code's default).
const DEFAULT_LINES: u64 = 2000;
/// Characters of one line kept; the rest is cut (minified files).
const MAX_LINE: usize = 2000;
/// The largest file read whole: beyond it, the model must say which part (`offset`, `limit`).
/// Why 256 KiB: about 64k tokens, a good share of a context window for one call.
const MAX_WHOLE: u64 = 256 * 1024;
/// The largest file read at all, in parts or not: the host reads it to count lines.
const MAX_FILE: u64 = 64 * 1024 * 1024;

pub(super) fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The absolute path of the file to read"},
            "offset": {"type": "number", "description": "The line number to start reading from (1-based)"},
            "limit": {"type": "number", "description": "The number of lines to read"}
        },
        "required": ["file_path"],
        "additionalProperties": false
    })
}

pub(super) fn call(ws: &Workspace, input: &Value) -> Result<String, String> {
    let path = text(input, "file_path")?;
    let offset = number(input, "offset")?.unwrap_or(1).max(1);
    let limit = number(input, "limit")?;
    let mut file = ws.open_file(path, cap_std::fs::OpenOptions::new().read(true), false)?;
    let meta = file.metadata().map_err(|e| ws.io_error(path, &e))?;
    if meta.is_dir() {
        return Err(format!(
            "`{path}` is a directory: list it with Glob (`pattern: \"*\"`, `path: \"{path}\"`)"
        ));
    }
    let size = meta.len();
    if size > MAX_FILE || (size > MAX_WHOLE && limit.is_none() && offset == 1) {
        return Err(format!(
            "`{path}` is {size} bytes, more than the {} a Read hands back whole: read it in parts with `offset` and `limit`, or search it with Grep",
            if size > MAX_FILE { MAX_FILE } else { MAX_WHOLE }
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| ws.io_error(path, &e))?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err(format!("`{path}` is a binary file: Read shows text files"));
    }
    let content = String::from_utf8_lossy(&bytes);
    if content.is_empty() {
        return Ok(format!("(`{path}` is empty)"));
    }
    let limit = limit.unwrap_or(DEFAULT_LINES);
    let mut out = String::new();
    let mut shown = 0u64;
    let mut total = 0u64;
    for (i, line) in content.lines().enumerate() {
        total += 1;
        let n = i as u64 + 1;
        if n < offset || shown >= limit {
            continue;
        }
        let line = match line.char_indices().nth(MAX_LINE) {
            Some((cut, _)) => &line[..cut],
            None => line,
        };
        out.push_str(&format!("{n:>6}\t{line}\n"));
        shown += 1;
    }
    if shown == 0 {
        return Err(format!(
            "`{path}` has {total} lines: offset {offset} is past its end"
        ));
    }
    let last = offset + shown - 1;
    if last < total {
        out.push_str(&format!(
            "… (lines {offset}–{last} of {total}; read on with offset {})\n",
            last + 1
        ));
    }
    Ok(out)
}
