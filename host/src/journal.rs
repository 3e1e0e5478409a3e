//! The run journal: every agent result, content-keyed, so a re-run or a resume replays
//! unchanged calls for free.
//!
//! One directory per run, `.wfhost/runs/<run_id>/` under the project (the nearest directory
//! with `.git`, else the current one; `$WFHOST_RUNS_DIR` overrides), holding:
//!
//! - `script.js` — the script as it ran (for `wfhost resume`), `args.json`;
//! - `journal.jsonl` — append-only records (see [`Record`]);
//! - `transcripts/<key>-<occurrence>.json` — each agent's request and response;
//! - `lock` — held (flock) by the process running the run.
//!
//! Durability: a result is appended to the journal *before* the script sees it, so a crash of
//! wfhost (even SIGKILL) never loses a completed agent: the bytes are in the kernel. They reach
//! stable storage by `fdatasync`, batched: the flusher syncs at most every 50 ms while records
//! are arriving, and once more when the run ends. A power loss can lose at most the last 50 ms
//! of results, which then simply run again. The reader tolerates a torn last line.

use crate::backend::{AgentRequest, Usage};
use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why 50 ms: one fdatasync per batch keeps a 1000-agent fan-out from paying 1000 syncs,
/// while the window a power loss can cost is shorter than any agent call.
const SYNC_INTERVAL: Duration = Duration::from_millis(50);

/// One line of `journal.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    RunStarted {
        run_id: String,
        script: String,
        name: String,
        backend: String,
        started_at: String,
        #[serde(default)]
        resume: bool,
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
    },
    /// Served from this journal instead of the backend.
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
        outcome: String,
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
    },
}

/// The journal key of an agent call: blake3 of the canonical JSON of what determines its
/// answer — prompt, schema, model, effort, agentType, isolation and the backend's identity.
/// Not `label` or `phase`: renaming an agent must not re-run it.
pub fn agent_key(request: &AgentRequest, backend_identity: &str) -> String {
    let v = serde_json::json!({
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

/// JSON with object keys sorted at every level, so equal values always hash equally.
pub fn canonical_json(v: &Value) -> String {
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

/// A stored result, ready to be served again.
#[derive(Debug, Clone)]
pub struct Cached {
    pub value: Value,
    pub usage: Usage,
    pub cost_usd: f64,
}

/// Where runs live.
pub fn runs_dir(cwd: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("WFHOST_RUNS_DIR") {
        return PathBuf::from(d);
    }
    let root = cwd
        .ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(cwd);
    root.join(".wfhost").join("runs")
}

/// True when a live process holds the run's lock.
pub fn is_running(dir: &Path) -> bool {
    match File::open(dir.join("lock")) {
        Ok(f) => f.try_lock_shared().is_err(),
        Err(_) => false,
    }
}

pub fn run_dir(cwd: &Path, run_id: &str) -> Result<PathBuf> {
    if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id.starts_with('.') {
        bail!("`{run_id}` is not a run id\nhint: `wfhost runs` lists them");
    }
    Ok(runs_dir(cwd).join(run_id))
}

/// The open journal of a run: the lock, the append handle, the flusher.
pub struct Journal {
    dir: PathBuf,
    file: Arc<Mutex<File>>,
    dirty: Arc<std::sync::atomic::AtomicBool>,
    _lock: File,
}

impl Journal {
    /// Opens (creating if needed) the run directory and takes its lock. Fails with a clear
    /// error when another live process holds it.
    pub fn open(dir: &Path) -> Result<Journal> {
        let runs = dir.parent().context("run directory has no parent")?;
        std::fs::create_dir_all(dir.join("transcripts"))
            .with_context(|| format!("cannot create the run directory `{}`", dir.display()))?;
        let ignore = runs.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(
                &ignore,
                "# wfhost run journals: local state, never committed\n*\n",
            )?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(crate::ExitError::temporary(format!(
                "run `{}` is still running (another wfhost process holds its lock)\nhint: wait for it to finish, or stop it (Ctrl-C) and resume it then",
                dir.file_name().unwrap_or_default().to_string_lossy()
            )));
        }
        let path = dir.join("journal.jsonl");
        repair_torn_tail(&path)?;
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let journal = Journal {
            dir: dir.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
            dirty: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            _lock: lock,
        };
        journal.start_flusher();
        Ok(journal)
    }

    pub fn dir(&self) -> &Path {
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
                    && let Ok(f) = file.lock()
                {
                    let _ = f.sync_data();
                }
            }
        });
    }

    /// Appends one record (a whole line in one write).
    pub fn append(&self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let mut f = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        f.write_all(&line).context("writing the run journal")?;
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Writes everything to stable storage now (at the end of a run).
    pub fn sync(&self) -> Result<()> {
        let f = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        f.sync_data()?;
        Ok(())
    }

    pub fn write_transcript(&self, key: &str, occurrence: u32, transcript: &Value) {
        let path = self
            .dir
            .join("transcripts")
            .join(format!("{key}-{occurrence}.json"));
        // Best effort: the journal record is what resume relies on.
        let _ = std::fs::write(
            path,
            serde_json::to_vec_pretty(transcript).unwrap_or_default(),
        );
    }
}

/// A process killed mid-write leaves a partial last line. Before appending, cut the file back
/// to its last complete line, or the next record would be glued to the fragment.
fn repair_torn_tail(path: &Path) -> Result<()> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(());
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(keep as u64)?;
    f.sync_data()?;
    Ok(())
}

/// A journal read back.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    /// The last line was cut short (the process died mid-write); it was ignored.
    pub torn_tail: bool,
}

impl Loaded {
    /// Every stored result by (key, occurrence). A later failure of the same call (in a later
    /// resume) does not remove an earlier success.
    pub fn cache(&self) -> HashMap<(String, u32), Cached> {
        let mut cache = HashMap::new();
        for r in &self.records {
            if let Record::Result {
                key,
                occurrence,
                value,
                usage,
                cost_usd,
                ..
            } = r
                && !value.is_null()
            {
                cache.insert(
                    (key.clone(), *occurrence),
                    Cached {
                        value: value.clone(),
                        usage: *usage,
                        cost_usd: *cost_usd,
                    },
                );
            }
        }
        cache
    }
}

/// Reads `journal.jsonl`. Only the last line may be malformed (a torn write); anything else is
/// reported as corruption with its line number.
pub fn load(dir: &Path) -> Result<Loaded> {
    let path = dir.join("journal.jsonl");
    let text = std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut loaded = Loaded::default();
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let complete = text.ends_with(b"\n");
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => loaded.records.push(r),
            Err(_) if i + 1 == lines.len() && !complete => loaded.torn_tail = true,
            Err(e) => bail!("`{}` line {} is corrupt: {e}", path.display(), i + 1),
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let l = load(dir.path()).unwrap();
        assert!(l.torn_tail);
        assert_eq!(l.records.len(), 1);
        std::fs::write(dir.path().join("journal.jsonl"), format!("{{bad\n{ok}\n")).unwrap();
        assert!(
            load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("line 1 is corrupt")
        );
    }

    #[test]
    fn appending_after_a_torn_tail_keeps_the_journal_valid() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        std::fs::create_dir_all(&run).unwrap();
        let ok = serde_json::to_string(&Record::Phase { title: "a".into() }).unwrap();
        std::fs::write(run.join("journal.jsonl"), format!("{ok}\n{{\"type\":\"res")).unwrap();
        let j = Journal::open(&run).unwrap();
        j.append(&Record::Phase { title: "b".into() }).unwrap();
        let l = load(&run).unwrap();
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
