//! Sealed records: each journal line carries a MAC (keyed blake3) of its bytes under a key made
//! for the run and kept beside the journal (`journal.key`, 0600). A resume refuses a line whose
//! MAC does not match — an edited value, a swapped key, a schema answer turned into a string —
//! naming the line, instead of serving it to the script.
//!
//! What this protects against: edits to the journal (by hand, by a tool, by an agent working in
//! the project) that do not also recompute the MAC with the key. What it does not: someone who
//! can read `journal.key` and rewrite the journal with it; keep run directories private.
//!
//! A line is the record's JSON with one more member at the end: `{…,"mac":"<64 hex>"}`; the MAC
//! covers the record's JSON exactly as written (without that member).

use anyhow::{Context as _, Result};
use std::path::Path;

const TAIL: &[u8] = b",\"mac\":\"";

pub(crate) struct Key([u8; 32]);

impl Key {
    /// The key of a run's journal: made (and written, 0600) for a fresh journal; read for an
    /// existing one; `None` for a journal that was started before records were sealed.
    pub(crate) fn open(path: &Path, fresh: bool) -> Result<Option<Key>> {
        if let Some(key) = Key::read(path)? {
            return Ok(Some(key));
        }
        if !fresh {
            return Ok(None);
        }
        let bytes = crate::random_key().context("reading /dev/urandom for the journal key")?;
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create `{}`", path.display()))?;
        f.write_all(hex(&bytes).as_bytes())?;
        f.sync_all()?;
        Ok(Some(Key(bytes)))
    }

    /// The key beside a journal, if there is one.
    pub(crate) fn read(path: &Path) -> Result<Option<Key>> {
        let text = match super::read_nofollow(path) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        };
        let bytes = unhex(text.trim())
            .with_context(|| format!("`{}` is not a journal key", path.display()))?;
        Ok(Some(Key(bytes)))
    }

    fn mac(&self, body: &[u8]) -> String {
        blake3::keyed_hash(&self.0, body).to_hex().to_string()
    }

    /// Appends the MAC member to a record's JSON (`{…}` → `{…,"mac":"…"}`).
    pub(crate) fn seal(&self, json: &mut Vec<u8>) {
        let mac = self.mac(json);
        json.pop(); // the closing brace
        json.extend_from_slice(TAIL);
        json.extend_from_slice(mac.as_bytes());
        json.extend_from_slice(b"\"}");
    }

    /// The record's JSON from a sealed line, if its MAC is right.
    pub(crate) fn open_line<'a>(&self, line: &'a [u8]) -> Result<&'a [u8], &'static str> {
        let at = line
            .windows(TAIL.len())
            .rposition(|w| w == TAIL)
            .ok_or("has no checksum")?;
        let rest = &line[at + TAIL.len()..];
        if rest.len() != 64 + 2 || &rest[64..] != b"\"}" {
            return Err("has a malformed checksum");
        }
        let mut body = line[..at].to_vec();
        body.push(b'}');
        if self.mac(&body).as_bytes() != &rest[..64] {
            return Err("fails its checksum");
        }
        // The record's bytes are the line's up to the MAC member; serde reads `{…,"mac":…}`
        // the same (the member is ignored), so the line itself is returned.
        Ok(line)
    }
}

/// Whether a line carries a MAC member (a sealed journal whose key has gone missing must not be
/// read as an old, unsealed one).
pub(crate) fn is_sealed(line: &[u8]) -> bool {
    line.windows(TAIL.len()).any(|w| w == TAIL)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_line_opens_and_any_edit_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::open(&dir.path().join("journal.key"), true)
            .unwrap()
            .unwrap();
        let mut line = br#"{"type":"result","key":"k1","occurrence":0,"value":{"n":1}}"#.to_vec();
        key.seal(&mut line);
        assert!(key.open_line(&line).is_ok());
        let text = String::from_utf8(line.clone()).unwrap();
        for edited in [
            text.replace(r#"{"n":1}"#, r#"{"n":2}"#),
            text.replace(r#""k1""#, r#""k2""#),
            text.replace(r#"{"n":1}"#, r#""{\"n\":1}""#),
        ] {
            assert_eq!(key.open_line(edited.as_bytes()), Err("fails its checksum"));
        }
        let unsealed = br#"{"type":"phase","title":"a"}"#;
        assert_eq!(key.open_line(unsealed), Err("has no checksum"));
        let again = Key::read(&dir.path().join("journal.key")).unwrap().unwrap();
        assert!(again.open_line(&line).is_ok(), "the key file round-trips");
    }
}
