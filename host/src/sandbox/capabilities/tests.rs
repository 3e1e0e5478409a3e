//! The capability surface on its own: a small hand-written module and a `Store<Capabilities>`,
//! no guest, no QuickJS.

use super::*;
use crate::backend::mock::Mock;
use crate::scheduler::SchedulerSetup;
use wasmtime::{Engine, Instance, Module, Store};

const MODULE_WAT: &str = r#"
(module
  (import "wfhost" "log" (func $log (param i32 i32 i32)))
  (import "wfhost" "phase" (func $phase (param i32 i32)))
  (import "wfhost" "spawn" (func $spawn (param i32 i32) (result i64)))
  (import "wfhost" "wait-next" (func $wait (result i64)))
  (import "wfhost" "context" (func $context (result i64)))
  (import "wfhost" "finish" (func $finish (param i32 i32)))
  (import "wfhost" "spawn-agent" (func $spawn_agent
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wfhost" "take-error" (func $take_error (result i64)))
  (memory (export "memory") 4)
  (global $bump (mut i32) (i32.const 65536))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get 3)))
    (local.get $p))
  (func (export "log") (param i32 i32) (call $log (i32.const 0) (local.get 0) (local.get 1)))
  (func (export "phase") (param i32 i32) (call $phase (local.get 0) (local.get 1)))
  (func (export "spawn") (param i32 i32) (result i64) (call $spawn (local.get 0) (local.get 1)))
  (func (export "wait") (result i64) (call $wait))
  (func (export "context") (result i64) (call $context))
  (func (export "finish") (param i32 i32) (call $finish (local.get 0) (local.get 1)))
  ;; spawn-agent with only a prompt, in a parallel() slot (id 7, index 3)
  (func (export "spawn_agent") (param i32 i32) (result i64)
    (call $spawn_agent (local.get 0) (local.get 1) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 7) (i32.const 3)
      (i32.const 0) (i32.const 0) (i32.const 0)))
  (func (export "take_error") (result i64) (call $take_error)))
"#;

struct Harness {
    store: Store<Capabilities>,
    instance: Instance,
}

impl Harness {
    async fn new(limits: Limits) -> Harness {
        let engine = Engine::default();
        let module = Module::new(&engine, wat::parse_str(MODULE_WAT).unwrap()).unwrap();
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker, |c: &mut Capabilities| c).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let scheduler = Scheduler::start(SchedulerSetup {
            limited: std::sync::atomic::AtomicBool::new(false),
            backend: Arc::new(Mock::default()),
            concurrency: 2,
            done: tx.clone(),
            events: Events::none(),
            journal: None,
            recorder: None,
            config: Arc::default(),
            control: crate::control::Control::new("test", None, None, "/nonexistent".into()),
            stall_timeout: limits.stall_timeout,
            wait_on_limit: false,
            agent_timeout: limits.agent_timeout,
            batches: None,
            sessions: HashMap::new(),
        });
        let caps = Capabilities::new(RunSetup {
            turns: HashMap::new(),
            args: Some(json!({"files": ["a.rs"]})),
            budget_total: None,
            limits,
            scheduler,
            completions: (tx, rx),
            workflows: Resolver::discover(std::path::Path::new("/nonexistent")),
            events: Events::none(),
            journal: None,
            cache: HashMap::new(),
            backend_identity: "mock".into(),
            max_cost: None,
            phase_models: HashMap::new(),
            worktrees: crate::backend::worktree::Check::new(
                std::path::Path::new("/nonexistent"),
                crate::backend::worktree::Place::Here,
            ),
        });
        let mut store = Store::new(&engine, caps);
        let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
        Harness { store, instance }
    }

    /// Writes `text` at the start of memory; returns `(ptr, len)`.
    fn put(&mut self, text: &str) -> (u32, u32) {
        let memory = self.instance.get_memory(&mut self.store, "memory").unwrap();
        memory.write(&mut self.store, 0, text.as_bytes()).unwrap();
        (0, u32::try_from(text.len()).unwrap())
    }

    /// Reads a string the host returned as `(ptr << 32) | len`.
    fn get(&mut self, packed: i64) -> String {
        let packed = packed.cast_unsigned();
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let memory = self.instance.get_memory(&mut self.store, "memory").unwrap();
        let mut buf = vec![0; len];
        memory.read(&self.store, ptr, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    async fn call_text(&mut self, name: &str, text: &str) -> wasmtime::Result<()> {
        let (ptr, len) = self.put(text);
        let f = self
            .instance
            .get_typed_func::<(u32, u32), ()>(&mut self.store, name)
            .unwrap();
        f.call_async(&mut self.store, (ptr, len)).await
    }

    /// `wait-next`'s binary reply: (handle, kind, spent, payload).
    async fn wait(&mut self) -> (u32, u8, u64, String) {
        let f = self
            .instance
            .get_typed_func::<(), i64>(&mut self.store, "wait")
            .unwrap();
        let packed = f
            .call_async(&mut self.store, ())
            .await
            .unwrap()
            .cast_unsigned();
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let memory = self.instance.get_memory(&mut self.store, "memory").unwrap();
        let mut b = vec![0; len];
        memory.read(&self.store, ptr, &mut b).unwrap();
        (
            u32::from_le_bytes(b[0..4].try_into().unwrap()),
            b[4],
            u64::from_le_bytes(b[5..13].try_into().unwrap()),
            String::from_utf8(b[13..].to_vec()).unwrap(),
        )
    }

    async fn call_reply(&mut self, name: &str, text: Option<&str>) -> Value {
        let packed = match text {
            Some(text) => {
                let (ptr, len) = self.put(text);
                let f = self
                    .instance
                    .get_typed_func::<(u32, u32), i64>(&mut self.store, name)
                    .unwrap();
                f.call_async(&mut self.store, (ptr, len)).await.unwrap()
            }
            None => {
                let f = self
                    .instance
                    .get_typed_func::<(), i64>(&mut self.store, name)
                    .unwrap();
                f.call_async(&mut self.store, ()).await.unwrap()
            }
        };
        serde_json::from_str(&self.get(packed)).unwrap()
    }
}

fn limits(max_output_bytes: u64) -> Limits {
    Limits {
        max_output_bytes,
        ..Limits::default()
    }
}

#[tokio::test]
async fn context_carries_args_and_the_agent_cap() {
    let mut h = Harness::new(Limits::default()).await;
    let context = h.call_reply("context", None).await;
    assert_eq!(context["args"], json!({"files": ["a.rs"]}));
    assert_eq!(context["agentCap"], 1000);
}

#[tokio::test]
async fn logs_are_charged_to_the_ledger_and_stop_at_its_limit() {
    let mut h = Harness::new(limits(100)).await;
    h.call_text("log", "hello").await.unwrap();
    assert_eq!(h.store.data().ledger.logs, vec!["hello".to_string()]);
    assert_eq!(h.store.data().ledger.bytes(), 6);
    let e = h.call_text("log", &"x".repeat(200)).await.unwrap_err();
    assert!(format!("{e:?}").contains("limit reached"), "{e:?}");
    assert_eq!(h.store.data().limit_hit, Some(LimitHit::OutputBytes));
    assert_eq!(
        h.store.data().ledger.logs.len(),
        1,
        "the line over the limit is not kept"
    );
}

#[tokio::test]
async fn phase_titles_share_the_same_ledger() {
    let mut h = Harness::new(limits(1024)).await;
    let title = "t".repeat(100);
    let mut accepted = 0;
    for _ in 0..2000 {
        if h.call_text("phase", &title).await.is_err() {
            break;
        }
        accepted += 1;
    }
    assert_eq!(accepted, 10, "1 KiB holds ten 101-byte titles");
    assert_eq!(h.store.data().limit_hit, Some(LimitHit::OutputBytes));
}

#[tokio::test]
async fn the_result_is_charged_too() {
    let mut h = Harness::new(limits(64)).await;
    h.call_text("finish", r#"{"ok":true,"value":1}"#)
        .await
        .unwrap();
    assert_eq!(
        h.store.data().outcome,
        Some(json!({"ok": true, "value": 1}))
    );
    let mut h = Harness::new(limits(64)).await;
    let big = format!(r#"{{"ok":true,"value":"{}"}}"#, "v".repeat(100));
    assert!(h.call_text("finish", &big).await.is_err());
    assert_eq!(h.store.data().limit_hit, Some(LimitHit::OutputBytes));
}

#[tokio::test]
async fn agents_and_timers_round_trip_through_wait_next() {
    let mut h = Harness::new(Limits::default()).await;
    let timer = h
        .call_reply("spawn", Some(r#"{"kind":"timer","ms":1}"#))
        .await;
    let agent = h
        .call_reply(
            "spawn",
            Some(r#"{"kind":"agent","prompt":"say hi","label":"greeter"}"#),
        )
        .await;
    assert_eq!(agent["agentsLeft"], 999);
    let mut seen = [h.wait().await, h.wait().await];
    seen.sort_by_key(|s| s.0);
    assert_eq!(u64::from(seen[0].0), timer["handle"].as_u64().unwrap());
    assert_eq!(seen[0].1, 0, "a timer has no value");
    assert_eq!(u64::from(seen[1].0), agent["handle"].as_u64().unwrap());
    assert_eq!(seen[1].1, 1, "a text answer crosses as text");
    assert_eq!(seen[1].3, "R(say hi)");
    let ledger = &h.store.data().ledger;
    assert_eq!((ledger.agents_started, ledger.agents_done), (1, 1));
    assert_eq!(
        ledger.bytes(),
        "greeter".len() as u64,
        "the label is charged"
    );
}

#[tokio::test]
async fn a_refused_spawn_is_an_error_value_not_a_trap() {
    let mut h = Harness::new(Limits::default()).await;
    let reply = h.call_reply("spawn", Some(r#"{"kind":"agent"}"#)).await;
    assert_eq!(reply["error"]["name"], "TypeError");
    let reply = h
        .call_reply("spawn", Some(r#"{"kind":"timer","ms":1e12}"#))
        .await;
    assert_eq!(reply["error"]["name"], "RangeError");
}

#[tokio::test]
async fn the_typed_spawn_path_starts_agents_and_explains_refusals() {
    let mut h = Harness::new(Limits {
        max_agents: 1,
        ..Limits::default()
    })
    .await;
    let spawn = |h: &mut Harness, prompt: &str| {
        let (ptr, len) = h.put(prompt);
        let f = h
            .instance
            .get_typed_func::<(u32, u32), i64>(&mut h.store, "spawn_agent")
            .unwrap();
        (f, ptr, len)
    };
    let (f, ptr, len) = spawn(&mut h, "typed hello");
    let handle = f.call_async(&mut h.store, (ptr, len)).await.unwrap();
    assert!(handle > 0);
    let (done, kind, _, value) = h.wait().await;
    assert_eq!(
        (i64::from(done), kind, value.as_str()),
        (handle, 1, "R(typed hello)")
    );
    // The cap is 1: the second is refused, and take-error says why.
    let (f, ptr, len) = spawn(&mut h, "one too many");
    assert_eq!(f.call_async(&mut h.store, (ptr, len)).await.unwrap(), -1);
    let why = h.call_reply("take_error", None).await;
    assert_eq!(why["name"], "WorkflowAgentCapError");
}
