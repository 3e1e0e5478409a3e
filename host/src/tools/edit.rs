//! `Edit`: replaces an exact string in a file of the workspace; as in Claude Code, a string
//! that is not unique is an error unless `replace_all` says to replace every one.

use super::{Workspace, text};
use serde_json::{Value, json};

pub(super) const DESCRIPTION: &str = "Replaces `old_string` with `new_string` in a file of the workspace. `old_string` must match the file exactly (whitespace included) and be unique in it, unless `replace_all` is true; give more surrounding context to make it unique.";

pub(super) fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The absolute path of the file to modify"},
            "old_string": {"type": "string", "description": "The text to replace"},
            "new_string": {"type": "string", "description": "The text to replace it with (must be different from old_string)"},
            "replace_all": {"type": "boolean", "default": false, "description": "Replace all occurrences of old_string (default false)"}
        },
        "required": ["file_path", "old_string", "new_string"],
        "additionalProperties": false
    })
}

pub(super) fn call(ws: &Workspace, input: &Value) -> Result<String, String> {
    let path = text(input, "file_path")?;
    let old = text(input, "old_string")?;
    let new = text(input, "new_string")?;
    let all = input["replace_all"].as_bool().unwrap_or(false);
    if old == new {
        return Err(
            "No changes to make: old_string and new_string are exactly the same.".to_string(),
        );
    }
    let rel = ws.relative(path)?;
    let mut file = ws.open_file(
        path,
        cap_std::fs::OpenOptions::new().read(true).write(true),
        true,
    )?;
    let mut content = String::new();
    std::io::Read::read_to_string(&mut file, &mut content).map_err(|e| ws.io_error(path, &e))?;
    let updated = if old.is_empty() {
        // Claude Code's way to fill an empty file.
        if !content.is_empty() {
            return Err(
                "old_string is empty but the file is not: give the text to replace".to_string(),
            );
        }
        new.to_string()
    } else {
        let count = content.matches(old).count();
        if count == 0 {
            return Err(format!(
                "String to replace not found in file.\nString: {old}"
            ));
        }
        if count > 1 && !all {
            return Err(format!(
                "Found {count} matches of the string to replace, but replace_all is false. To replace all occurrences, set replace_all to true. To replace only one occurrence, please provide more context to uniquely identify the instance.\nString: {old}"
            ));
        }
        content.replace(old, new)
    };
    super::write::replace(file, updated.as_bytes()).map_err(|e| ws.io_error(path, &e))?;
    Ok(format!(
        "The file {} has been updated.",
        ws.absolute(&rel).display()
    ))
}
