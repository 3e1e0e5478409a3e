//! Record and replay: `--record DIR` stores every answer under the journal's content key;
//! `--backend replay:DIR` serves them again with no backend call, and fails an agent whose
//! answer was never recorded with an error naming its prompt.
//!
//! `DIR/manifest.json` names the recorded backend; `DIR/<key>-<occurrence>.json` holds one
//! answer (`request`, `value`, `usage`). A replay takes the recorded backend's identity, so
//! its journal keys are the keys of the run it replays.

use super::{AgentError, AgentReply, AgentRequest, Backend, Usage};
use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct Recorder {
    dir: PathBuf,
}

impl Recorder {
    pub(crate) fn new(dir: &Path, backend: &dyn Backend) -> Result<Recorder> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let manifest = json!({ "backend": backend.name(), "identity": backend.identity() });
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec_pretty(&manifest)?,
        )?;
        Ok(Recorder {
            dir: dir.to_path_buf(),
        })
    }

    pub(crate) fn store(
        &self,
        key: &str,
        occurrence: u32,
        request: &AgentRequest,
        value: &Value,
        usage: &Usage,
    ) {
        let entry = json!({ "request": request, "value": value, "usage": usage });
        let path = self.dir.join(format!("{key}-{occurrence}.json"));
        if let Err(e) = std::fs::write(&path, serde_json::to_vec_pretty(&entry).unwrap_or_default())
        {
            eprintln!("warning: cannot record `{}`: {e}", path.display());
        }
    }
}

pub(crate) struct Replay {
    dir: PathBuf,
    /// The directory as the user named it, for messages.
    shown: PathBuf,
    identity: String,
    served: AtomicU64,
}

impl Replay {
    pub(crate) fn new(dir: &Path) -> Result<Replay> {
        let manifest = dir.join("manifest.json");
        let text = std::fs::read_to_string(&manifest).map_err(|_| {
            crate::ExitError::usage(format!(
                "`{}` is not a recording (no manifest.json)",
                dir.display()
            ))
            .hint(format!(
                "make one with `wfhost run SCRIPT --backend … --record {}`",
                dir.display()
            ))
        })?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not valid JSON", manifest.display()))?;
        Ok(Replay {
            // Absolute, so the spec a run stores (`replay:DIR`) means the same on resume.
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            shown: dir.to_path_buf(),
            identity: v["identity"].as_str().unwrap_or("replay").to_string(),
            served: AtomicU64::new(0),
        })
    }
}

#[async_trait::async_trait]
impl Backend for Replay {
    fn name(&self) -> &str {
        "replay"
    }

    fn spec(&self) -> String {
        format!("replay:{}", self.dir.display())
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }

    /// Recorded answers: no agent works anywhere, so no worktree is made.
    fn place(&self) -> super::worktree::Place {
        super::worktree::Place::Nowhere
    }

    async fn run(
        &self,
        req: &AgentRequest,
        _feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        let miss = || {
            let prompt: String = req.prompt.chars().take(80).collect();
            AgentError::permanent(format!(
                "no recorded answer in `{}` for the prompt \"{prompt}{}\"",
                self.shown.display(),
                if req.prompt.chars().count() > 80 {
                    "…"
                } else {
                    ""
                }
            ))
        };
        let (key, occurrence) = req.call.clone().ok_or_else(miss)?;
        // An identical call made more often than recorded gets the first recorded answer.
        let entry = [occurrence, 0]
            .iter()
            .find_map(|o| std::fs::read(self.dir.join(format!("{key}-{o}.json"))).ok())
            .ok_or_else(miss)?;
        let entry: Value = serde_json::from_slice(&entry)
            .map_err(|e| AgentError::permanent(format!("corrupt recording for {key}: {e}")))?;
        self.served.fetch_add(1, Ordering::Relaxed);
        let value = entry["value"].clone();
        let usage: Usage = serde_json::from_value(entry["usage"].clone()).unwrap_or_default();
        let (text, structured) = match &value {
            Value::String(s) => (s.clone(), None),
            v => (v.to_string(), Some(v.clone())),
        };
        Ok(AgentReply {
            text,
            structured,
            usage,
            cost_usd: Some(0.0),
            note: None,
        })
    }

    fn stats(&self) -> Option<Value> {
        Some(json!({ "calls": 0, "replayed": self.served.load(Ordering::Relaxed) }))
    }
}
