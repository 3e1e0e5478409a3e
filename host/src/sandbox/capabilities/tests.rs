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
  (func (export "finish") (param i32 i32) (call $finish (local.get 0) (local.get 1))))
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
            backend: Arc::new(Mock::default()),
            concurrency: 2,
            done: tx.clone(),
            events: Events::none(),
            journal: None,
            recorder: None,
            config: Arc::default(),
        });
        let caps = Capabilities::new(RunSetup {
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
    let mut seen = [
        h.call_reply("wait", None).await,
        h.call_reply("wait", None).await,
    ];
    seen.sort_by_key(|v| v["handle"].as_u64());
    assert_eq!(seen[0]["handle"], timer["handle"]);
    assert_eq!(seen[1]["handle"], agent["handle"]);
    assert!(seen[1]["value"].is_string(), "{:?}", seen[1]);
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
