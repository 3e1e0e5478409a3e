//! The run journal: every agent result, content-keyed, so a re-run or a resume replays
//! unchanged calls for free.
//!
//! The journal is `journal.jsonl` in the run's directory ([`RunDir`] owns that layout):
//! append-only records (see [`Record`]), read back by [`load`] and summarised by one fold,
//! [`History`].
//!
//! Durability: a result is appended to the journal *before* the script sees it, so a crash of
//! wfhost (even SIGKILL) never loses a completed agent: the bytes are in the kernel. They reach
//! stable storage by `fdatasync`, batched: the flusher syncs at most every 50 ms while records
//! are arriving, and once more when the run ends. A power loss can lose at most the last 50 ms
//! of results, which then simply run again. The reader tolerates a torn last line.

mod history;
mod seal;
mod transcripts;

pub(crate) use transcripts::Transcripts;

pub(crate) use history::{Call, History, Lifecycle};

use crate::agent::{AgentRequest, Usage};
use crate::run_dir::RunDir;
use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why 50 ms: one fdatasync per batch keeps a 1000-agent fan-out from paying 1000 syncs,
/// while the window a power loss can cost is shorter than any agent call.
const SYNC_INTERVAL: Duration = Duration::from_millis(50);

/// One line of `journal.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Record {
    RunStarted {
        run_id: String,
        script: String,
        name: String,
        /// The backend's spec (`mock`, `replay:/abs/dir`, …): what `resume` chooses again.
        backend: String,
        started_at: String,
        #[serde(default)]
        resume: bool,
        /// The ceilings this attempt ran under (`resume` keeps them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ceilings: Option<crate::limits::Ceilings>,
    },
    Phase {
        title: String,
    },
    AgentStarted {
        key: String,
        occurrence: u32,
        label: String,
        #[serde(default)]
        phase: Option<String>,
        /// The parallel()/pipeline() slot that started it: `{kind, id, index}` or
        /// `{kind, id, item, stage}` (for traces).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<Value>,
        /// The order the script started it in (with `served` calls).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handle: Option<u32>,
    },
    Result {
        key: String,
        occurrence: u32,
        value: Value,
        usage: Usage,
        #[serde(default)]
        cost_usd: f64,
        backend: String,
    },
    Failed {
        key: String,
        occurrence: u32,
        error: String,
        /// What the failed call spent (a schema never met, a stream cut off late): billed
        /// all the same, so `runs` and resume count it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<crate::agent::Usage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
    },
    /// The calls an attempt served from this journal instead of the backend, in one record
    /// (written when the attempt ends, or every `SERVED_BATCH` calls): a resume's record of
    /// what it served does not grow the journal by a line per agent, so resumes stay as fast
    /// as the first.
    Served {
        calls: Vec<ServedCall>,
    },
    /// Served from this journal instead of the backend (one record per call: journals written
    /// before `served`).
    Cached {
        key: String,
        occurrence: u32,
        label: String,
        #[serde(default)]
        phase: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<Value>,
    },
    RunFinished {
        outcome: crate::report::Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        #[serde(default)]
        error: Option<String>,
        duration_ms: u64,
        usage: Usage,
        agents_done: u32,
        agents_failed: u32,
        agents_cached: u32,
    },
    Interrupted {
        reason: String,
        /// How long this attempt ran before it was stopped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
    },
    /// A turn of a tool-using agent (`tools::transcript`): written when the model has asked
    /// for its tool calls, then again with their results.
    Turn {
        key: String,
        occurrence: u32,
        turn: u32,
        assistant: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        results: Option<Vec<(String, crate::tools::ToolOutput)>>,
    },
    /// A decision on an agent's permission request: the tool and its input (as the prompt
    /// showed it), allowed or not, how (`once`, `always`, `deny`, `rule`: a standing
    /// "always", `timeout`), the rule set or matched, who decided, when.
    Permission {
        id: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<u32>,
        tool: String,
        input: String,
        allowed: bool,
        decision: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        by: String,
        at: String,
    },
    /// A command on the run's control socket: what, which agent, who, when.
    Control {
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<u32>,
        by: String,
        at: String,
    },
    /// Ceilings an operator raised on a resume: which, old → new, who, when.
    CeilingsRaised(crate::limits::Raised),
    /// Agents sent to the Message Batches API as one batch (backend::batch), by the
    /// `custom_id` of each request: written before the run waits on it, so a resume polls
    /// this batch instead of sending (and paying for) its requests again.
    Batch {
        id: String,
        custom_ids: Vec<String>,
    },
    /// A `claude` agent's session began (tools::transcript): an agent interrupted before its
    /// result continues this session on resume (`claude --resume`).
    Session {
        key: String,
        occurrence: u32,
        session_id: String,
    },
}

/// The journal key of an agent call: blake3 of the canonical JSON of what determines its
/// answer — prompt, schema, model, effort, agentType, isolation and the backend's identity.
/// Not `label` or `phase`: renaming an agent must not re-run it.
pub(crate) fn agent_key(request: &AgentRequest, backend_identity: &str) -> String {
    // The bytes of `canonical_json` of that object, streamed into the hash field by field
    // (keys in their sorted order) instead of built as a `Value` and a string for each field:
    // this runs once per agent. A test holds it to the canonical form, so keys never change.
    fn field(h: &mut blake3::Hasher, first: bool, name: &str, value: Option<&str>) {
        h.update(if first { b"{\"" } else { b",\"" });
        h.update(name.as_bytes());
        h.update(b"\":");
        match value {
            Some(v) => {
                let _ = serde_json::to_writer(&mut *h, v);
            }
            None => {
                h.update(b"null");
            }
        }
    }
    let mut h = blake3::Hasher::new();
    field(&mut h, true, "agentType", request.agent_type.as_deref());
    field(&mut h, false, "backend", Some(backend_identity));
    field(&mut h, false, "effort", request.effort.as_deref());
    field(&mut h, false, "isolation", request.isolation.as_deref());
    field(&mut h, false, "model", request.model.as_deref());
    field(&mut h, false, "prompt", Some(&request.prompt));
    h.update(b",\"schema\":");
    match &request.schema {
        Some(schema) => h.update(canonical_json(schema).as_bytes()),
        None => h.update(b"null"),
    };
    h.update(b"}");
    h.finalize().to_hex()[..32].to_string()
}

/// JSON with object keys sorted at every level, so equal values always hash equally.
pub(crate) fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// One call an attempt served from the journal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ServedCall {
    pub key: String,
    pub occurrence: u32,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Value>,
    pub handle: u32,
}

/// How many served calls are buffered before they are written as one `served` record.
/// Why 4096: a fan-out's worth, so a resume writes a line or two, not one per agent, and a
/// crash loses at most that many lines of trace detail (never a result).
pub(crate) const SERVED_BATCH: usize = 4096;

/// A stored result, ready to be served again.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub value: Value,
    pub usage: Usage,
    pub cost_usd: f64,
}

/// The open journal of a run: the lock, the append handle, the flusher.
pub(crate) struct Journal {
    dir: RunDir,
    /// Seals every record (`None`: a journal started before records were sealed).
    seal: Option<seal::Key>,
    transcripts: transcripts::Writer,
    file: Arc<Mutex<Tail>>,
    dirty: Arc<std::sync::atomic::AtomicBool>,
    /// The first append that failed (a full disk, an I/O error): once set, the run must stop,
    /// because what it finishes next could not be kept.
    failure: std::sync::OnceLock<String>,
    _lock: File,
}

/// The append handle and the length of the journal's last complete record.
struct Tail {
    file: File,
    len: u64,
}

impl Journal {
    /// Opens (creating if needed) the run directory and takes its lock. Fails with a clear
    /// error when another live process holds it.
    pub(crate) fn open(dir: &RunDir) -> Result<Journal> {
        dir.create()?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.lock())?;
        if lock.try_lock().is_err() {
            return Err(crate::ExitError::temporary(format!(
                "run `{}` is still running (another wfhost process holds its lock)",
                dir.id()
            ))
            .hint("wait for it to finish, or stop it (Ctrl-C) and resume it then")
            .into());
        }
        let path = dir.journal();
        repair_torn_tail(&path)?;
        let fresh = std::fs::metadata(&path).map_or(true, |m| m.len() == 0);
        if !fresh {
            refuse_unsealed(&path)?;
        }
        let seal = seal::Key::open(&dir.journal_key(), fresh)?;
        let file = RunDir::private_file(&path)?;
        let len = file.metadata()?.len();
        let journal = Journal {
            dir: dir.clone(),
            seal,
            transcripts: transcripts::Writer::new(dir),
            file: Arc::new(Mutex::new(Tail { file, len })),
            dirty: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            failure: std::sync::OnceLock::new(),
            _lock: lock,
        };
        journal.start_flusher();
        Ok(journal)
    }

    pub(crate) fn dir(&self) -> &RunDir {
        &self.dir
    }

    /// The flusher: a thread that fdatasyncs the journal when records arrived since the last
    /// sync. It ends when the journal is dropped.
    fn start_flusher(&self) {
        let file = Arc::downgrade(&self.file);
        let dirty = self.dirty.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(SYNC_INTERVAL);
                let Some(file) = file.upgrade() else { break };
                if dirty.swap(false, std::sync::atomic::Ordering::AcqRel)
                    && let Ok(t) = file.lock()
                {
                    let _ = t.file.sync_data();
                }
            }
        });
    }

    /// Appends one record (a whole line in one write). A write that fails (a full disk) is
    /// cut back to the last complete record, so the journal stays valid whatever happens next,
    /// and the failure is remembered ([`Journal::failure`]): the run must stop.
    pub(crate) fn append(&self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record)?;
        if let Some(key) = &self.seal {
            key.seal(&mut line);
        }
        line.push(b'\n');
        let mut t = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        if let Err(e) = t.file.write_all(&line) {
            // Shrinking needs no space: this works on a full disk too.
            let _ = t.file.set_len(t.len);
            let message = format!(
                "cannot write the run journal `{}`: {e}",
                self.dir.journal().display()
            );
            let _ = self.failure.set(message.clone());
            anyhow::bail!(message);
        }
        t.len += line.len() as u64;
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Why the journal stopped taking records, if it did.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Writes everything to stable storage now (at the end of a run).
    pub(crate) fn sync(&self) -> Result<()> {
        let t = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        t.file.sync_data()?;
        Ok(())
    }

    /// Appends an agent call's transcript (best effort: the journal record is what resume
    /// relies on). See journal/transcripts.rs.
    pub(crate) fn write_transcript(&self, key: &str, occurrence: u32, transcript: Value) {
        self.transcripts.write(key, occurrence, transcript);
    }
}

/// A process killed mid-write leaves a partial last line. Before appending, cut the file back
/// to its last complete line, or the next record would be glued to the fragment.
fn repair_torn_tail(path: &Path) -> Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut f) = OpenOptions::new().read(true).write(true).open(path) else {
        return Ok(());
    };
    let len = f.metadata()?.len();
    // Read backwards in blocks until a newline: only the torn record's bytes, never the whole
    // journal (a resume opens it, and journals grow with every attempt).
    let mut end = len;
    let mut block = vec![0u8; 64 << 10];
    let mut first = true;
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(block.len());
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut block[..n])?;
        if first && block[n - 1] == b'\n' {
            return Ok(()); // ends with a whole record
        }
        first = false;
        if let Some(i) = block[..n].iter().rposition(|b| *b == b'\n') {
            f.set_len(start + i as u64 + 1)?;
            f.sync_data()?;
            return Ok(());
        }
        end = start;
    }
    if len > 0 {
        f.set_len(0)?; // one torn record and nothing else
        f.sync_data()?;
    }
    Ok(())
}

/// A journal read back.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub records: Vec<Record>,
    /// The last line was cut short (the process died mid-write); it was ignored.
    pub torn_tail: bool,
}

/// Reads `journal.jsonl`. Only the last line may be malformed (a torn write); anything else is
/// reported as corruption with its line number. When the run has a journal key beside it, every
/// record must carry a valid MAC: an edited record is refused with its line number, never
/// served.
/// Reads a run directory's journal (the journal knows run directories; they do not know it).
pub(crate) fn load_run(dir: &RunDir) -> Result<Loaded> {
    load(&dir.journal())
}

pub(crate) fn load(path: &Path) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    loaded.torn_tail = scan(path, |_, _| true, |r| loaded.records.push(r))?;
    Ok(loaded)
}

/// What a resume needs from a journal: the stored results, and the latest attempt's backend
/// and ceilings. Read without deserialising the lines it does not need (`cached`,
/// `agent_started`, …), so a resume does not slow down as resumes pile up their records.
#[derive(Debug, Default)]
pub(crate) struct ResumePoint {
    pub cache: HashMap<(String, u32), Cached>,
    pub attempts: u32,
    pub backend: Option<String>,
    pub ceilings: Option<crate::limits::Ceilings>,
    /// The run sent agents through the Message Batches API: its resume does too (it may have
    /// a batch to poll rather than requests to send).
    pub batched: bool,
}

/// The batches a run sent (backend::batch), as the batch each request was last sent in
/// (`custom_id` → batch id), read for a resume without deserialising any other line.
pub(crate) fn resume_batches(path: &Path) -> Result<HashMap<String, String>> {
    let mut sent = HashMap::new();
    scan(
        path,
        |_, line| line.starts_with(br#"{"type":"batch""#),
        |r| {
            if let Record::Batch { id, custom_ids } = r {
                for c in custom_ids {
                    sent.insert(c, id.clone());
                }
            }
        },
    )?;
    Ok(sent)
}

/// The sessions of `claude` agents that began and have no result or failure recorded after
/// (interrupted), by call: a resume continues them.
pub(crate) fn resume_sessions(path: &Path) -> Result<HashMap<(String, u32), String>> {
    let mut open = HashMap::new();
    scan(
        path,
        |_, line| {
            line.starts_with(br#"{"type":"session""#)
                || line.starts_with(br#"{"type":"result""#)
                || line.starts_with(br#"{"type":"failed""#)
        },
        |r| match r {
            Record::Session {
                key,
                occurrence,
                session_id,
            } => {
                open.insert((key, occurrence), session_id);
            }
            Record::Result {
                key, occurrence, ..
            }
            | Record::Failed {
                key, occurrence, ..
            } => {
                open.remove(&(key, occurrence));
            }
            _ => {}
        },
    )?;
    Ok(open)
}

/// The journaled turns of tool-using agents (tools::transcript), read for a resume without
/// deserialising any other line.
pub(crate) fn resume_turns(path: &Path) -> Result<crate::tools::transcript::Turns> {
    let mut records = Vec::new();
    scan(
        path,
        |_, line| line.starts_with(br#"{"type":"turn""#),
        |r| records.push(r),
    )?;
    Ok(crate::tools::transcript::collect(records))
}

pub(crate) fn resume_point(path: &Path) -> Result<ResumePoint> {
    let mut point = ResumePoint::default();
    let wanted = |_: usize, line: &[u8]| {
        line.starts_with(br#"{"type":"result""#)
            || line.starts_with(br#"{"type":"run_started""#)
            || line.starts_with(br#"{"type":"batch""#)
    };
    refuse_unsealed(path)?;
    scan(path, wanted, |r| match r {
        Record::Result {
            key,
            occurrence,
            value,
            usage,
            cost_usd,
            ..
        } if !value.is_null() => {
            point.cache.insert(
                (key, occurrence),
                Cached {
                    value,
                    usage,
                    cost_usd,
                },
            );
        }
        Record::RunStarted {
            backend, ceilings, ..
        } => {
            point.attempts += 1;
            point.backend = Some(backend);
            if ceilings.is_some() {
                point.ceilings = ceilings;
            }
        }
        Record::Batch { .. } => point.batched = true,
        _ => {}
    })?;
    Ok(point)
}

/// A resume serves only what it can check: a journal without its key is refused, whether its
/// lines carry MACs or not — deleting `journal.key` and stripping every MAC made a forged
/// journal read as one from before records were sealed, and it was served.
fn refuse_unsealed(path: &Path) -> Result<()> {
    let key = path.with_file_name("journal.key");
    let empty = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    if empty || key.exists() {
        return Ok(());
    }
    Err(crate::ExitError::refused(format!(
        "the run's `journal.key` is missing, so `{}` cannot be checked and none of it is served",
        path.display()
    ))
    .hint("restore `journal.key` beside the journal, or start the run again with `wfhost run` (a journal from a wfhost that did not seal journals cannot be resumed)")
    .into())
}

/// A run directory's file, read whole without following a symbolic link in its place (one
/// planted there would hand the journal's reader a file of the planter's choosing).
pub(crate) fn read_nofollow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads the journal's lines and hands the records `wanted` accepts to `each`, after checking
/// their MACs (when the run has a key). Lines `wanted` passes over are neither parsed nor
/// checked: nothing in them reaches the caller. Returns whether the last line was torn.
fn scan(
    path: &Path,
    wanted: impl Fn(usize, &[u8]) -> bool,
    mut each: impl FnMut(Record),
) -> Result<bool> {
    let text = read_nofollow(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let key = seal::Key::read(&path.with_file_name("journal.key"))?;
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let complete = text.ends_with(b"\n");
    for (i, line) in lines.iter().enumerate() {
        let torn = i + 1 == lines.len() && !complete;
        if !wanted(i, line) {
            continue;
        }
        let line: &[u8] = match &key {
            Some(key) => match key.open_line(line) {
                Ok(body) => body,
                Err(_) if torn => return Ok(true),
                Err(why) => {
                    return Err(crate::ExitError::refused(format!(
                        "`{}` line {} {why}: the journal was changed after wfhost wrote it, so none of it is served",
                        path.display(),
                        i + 1
                    ))
                    .hint("start the run again with `wfhost run`, or restore the journal as it was")
                    .into());
                }
            },
            None if seal::is_sealed(line) => {
                return Err(crate::ExitError::refused(format!(
                    "`{}` line {} is sealed, but the run's `journal.key` is missing, so the journal cannot be checked and none of it is served",
                    path.display(),
                    i + 1
                ))
                .hint("restore `journal.key` beside the journal, or start the run again with `wfhost run`")
                .into());
            }
            None => line,
        };
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => each(r),
            Err(_) if torn => return Ok(true),
            Err(e) => bail!("`{}` line {} is corrupt: {e}", path.display(), i + 1),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The key as it was first defined: blake3 of the canonical JSON of a `Value`. Journals and
    /// recordings written by every version must keep their keys.
    fn key_by_value(request: &AgentRequest, backend_identity: &str) -> String {
        let v = json!({
            "prompt": request.prompt,
            "schema": request.schema,
            "model": request.model,
            "effort": request.effort,
            "agentType": request.agent_type,
            "isolation": request.isolation,
            "backend": backend_identity,
        });
        blake3::hash(canonical_json(&v).as_bytes()).to_hex()[..32].to_string()
    }

    #[test]
    fn keys_are_the_canonical_json_keys_they_always_were() {
        let plain = AgentRequest {
            prompt: "Review a.rs".into(),
            ..Default::default()
        };
        let full = AgentRequest {
            prompt: "quote \" backslash \\ newline\n tab\t control \u{1} unicode é 🚀 </script>"
                .into(),
            schema: Some(
                json!({"type": "object", "required": ["z", "a"], "properties": {"z": {"enum": [1, "two", null]}, "a": {"type": "string"}}}),
            ),
            model: Some("claude-sonnet-4-5".into()),
            effort: Some("high".into()),
            agent_type: Some("reviewer".into()),
            isolation: Some("worktree".into()),
            label: "ignored".into(),
            ..Default::default()
        };
        for (r, backend) in [
            (&plain, "mock"),
            (&full, "messages:claude-sonnet-4-5:8192"),
            (&full, ""),
        ] {
            assert_eq!(agent_key(r, backend), key_by_value(r, backend), "{r:?}");
        }
        // A value this test can be checked against without the code above.
        assert_eq!(
            agent_key(&plain, "mock"),
            "2b2db46f0eac1d48a0e77697f74b3cf5"
        );
    }

    #[test]
    fn keys_ignore_label_phase_and_key_order() {
        let a = AgentRequest {
            prompt: "p".into(),
            schema: Some(json!({"type": "object", "properties": {"a": {}, "b": {}}})),
            label: "one".into(),
            ..Default::default()
        };
        let mut b = a.clone();
        b.label = "two".into();
        b.phase = Some("x".into());
        b.schema = Some(json!({"properties": {"b": {}, "a": {}}, "type": "object"}));
        assert_eq!(agent_key(&a, "mock"), agent_key(&b, "mock"));
        b.model = Some("m".into());
        assert_ne!(agent_key(&a, "mock"), agent_key(&b, "mock"));
        assert_ne!(agent_key(&a, "mock"), agent_key(&a, "claude"));
    }

    #[test]
    fn torn_tail_is_tolerated_but_corruption_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let ok = serde_json::to_string(&Record::Phase { title: "a".into() }).unwrap();
        std::fs::write(
            dir.path().join("journal.jsonl"),
            format!("{ok}\n{{\"type\":\"res"),
        )
        .unwrap();
        let l = load(&dir.path().join("journal.jsonl")).unwrap();
        assert!(l.torn_tail);
        assert_eq!(l.records.len(), 1);
        std::fs::write(dir.path().join("journal.jsonl"), format!("{{bad\n{ok}\n")).unwrap();
        assert!(
            load(&dir.path().join("journal.jsonl"))
                .unwrap_err()
                .to_string()
                .contains("line 1 is corrupt")
        );
    }

    #[test]
    fn appending_after_a_torn_tail_keeps_the_journal_valid() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::at(dir.path().join("r"));
        run.create().unwrap();
        {
            let j = Journal::open(&run).unwrap();
            j.append(&Record::Phase { title: "a".into() }).unwrap();
        }
        // A crash in the middle of a line.
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .open(run.journal())
            .unwrap()
            .write_all(b"{\"type\":\"res")
            .unwrap();
        let j = Journal::open(&run).unwrap();
        j.append(&Record::Phase { title: "b".into() }).unwrap();
        let l = load_run(&run).unwrap();
        assert!(!l.torn_tail);
        assert_eq!(
            l.records,
            vec![
                Record::Phase { title: "a".into() },
                Record::Phase { title: "b".into() }
            ]
        );
    }
}
