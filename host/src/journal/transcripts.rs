//! Agent transcripts: one append-only `transcripts.jsonl` per run, a line per agent call —
//! its request, usage, cost, duration and backend — written after the script already has the
//! answer (nothing waits on it). The answer itself is the journal's `result` record; it is not
//! stored twice. A prompt longer than `INLINE_PROMPT` bytes is stored once, by its blake3, in
//! `prompts/`, however many agents send it (a 64 MiB prompt sent 1000 times is 64 MiB on disk).
//!
//! Runs written before this layout have `transcripts/<key>-<occurrence>.json` files; `load`
//! reads those too.

use crate::run_dir::RunDir;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::sync::Mutex;

/// Why 4 KiB: most prompts are shorter and read best inline; longer ones are where fan-outs
/// repeat a shared head, so storing them once by content is where the space goes.
const INLINE_PROMPT: usize = 4096;

/// Appends transcript lines (best effort: the journal is what resume relies on).
pub(crate) struct Writer {
    file: Mutex<Option<File>>,
    dir: RunDir,
}

impl Writer {
    pub(crate) fn new(dir: &RunDir) -> Writer {
        let file = RunDir::private_file(&dir.transcripts_log()).ok();
        Writer {
            file: Mutex::new(file),
            dir: dir.clone(),
        }
    }

    /// Writes one transcript: `entry` holds `request.prompt`, which moves to `prompts/` when
    /// long.
    pub(crate) fn write(&self, key: &str, occurrence: u32, mut entry: Value) {
        if let Some(prompt) = entry["request"]["prompt"].as_str()
            && prompt.len() > INLINE_PROMPT
        {
            let hash = blake3::hash(prompt.as_bytes()).to_hex().to_string();
            let path = self.dir.prompt(&hash);
            if !path.exists() {
                let _ = std::fs::create_dir_all(self.dir.prompts());
                let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
                if RunDir::write_private(&tmp, prompt.as_bytes()).is_ok() {
                    let _ = std::fs::rename(&tmp, &path);
                }
            }
            if let Some(request) = entry["request"].as_object_mut() {
                request.remove("prompt");
                request.insert("prompt_ref".into(), hash.into());
            }
        }
        if let Some(map) = entry.as_object_mut() {
            map.insert("key".into(), key.into());
            map.insert("occurrence".into(), occurrence.into());
        }
        let mut line = serde_json::to_vec(&entry).unwrap_or_default();
        line.push(b'\n');
        if let Ok(mut f) = self.file.lock()
            && let Some(f) = f.as_mut()
        {
            let _ = f.write_all(&line);
        }
    }
}

/// A run's transcripts, read back.
#[derive(Debug, Default)]
pub(crate) struct Transcripts {
    by_call: HashMap<(String, u32), Value>,
    dir: Option<RunDir>,
}

impl Transcripts {
    /// Reads `transcripts.jsonl` (and the per-call files of older runs).
    pub(crate) fn load(run: &RunDir) -> Transcripts {
        let mut by_call = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(run.transcripts_log()) {
            for line in text.lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue; // a torn last line
                };
                if let (Some(key), Some(occurrence)) = (v["key"].as_str(), v["occurrence"].as_u64())
                {
                    let occurrence = u32::try_from(occurrence).unwrap_or(u32::MAX);
                    by_call.insert((key.to_string(), occurrence), v);
                }
            }
        }
        if let Ok(files) = std::fs::read_dir(run.transcripts()) {
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let Some((key, occurrence)) = name
                    .strip_suffix(".json")
                    .and_then(|stem| stem.rsplit_once('-'))
                    .and_then(|(k, o)| Some((k.to_string(), o.parse::<u32>().ok()?)))
                else {
                    continue;
                };
                if let Some(v) = std::fs::read(f.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                {
                    by_call.entry((key, occurrence)).or_insert(v);
                }
            }
        }
        Transcripts {
            by_call,
            dir: Some(run.clone()),
        }
    }

    pub(crate) fn get(&self, key: &str, occurrence: u32) -> Option<&Value> {
        self.by_call.get(&(key.to_string(), occurrence))
    }

    /// How long the call took.
    pub(crate) fn duration_ms(&self, key: &str, occurrence: u32) -> Option<u64> {
        self.get(key, occurrence)?["duration_ms"].as_u64()
    }

    /// The call's prompt, inline or from `prompts/`.
    pub(crate) fn prompt(&self, key: &str, occurrence: u32) -> Option<String> {
        let request = &self.get(key, occurrence)?["request"];
        if let Some(p) = request["prompt"].as_str() {
            return Some(p.to_string());
        }
        let hash = request["prompt_ref"].as_str()?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        std::fs::read_to_string(self.dir.as_ref()?.prompt(hash)).ok()
    }
}
