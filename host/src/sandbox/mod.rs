//! The sandbox: Wasmtime configured deny-by-default, the guest's allow-listed imports, the
//! limits, and running one script in a fresh instance.
//!
//! `RunState` is the T in `Store<T>`: the WASI context (allow-listed, deterministic), the
//! resource limiter, and the wfhost capabilities (none while only compiling). Nothing else is
//! reachable from the guest.

pub(crate) mod abi;
pub(crate) mod capabilities;
pub(crate) mod wasi;

use crate::compile::{self, GuestArtifact};
use crate::limits::{LimitHit, Limits};
use anyhow::{Context as _, Result};
use capabilities::Capabilities;
use std::sync::OnceLock;
use std::time::Duration;
use wasmtime::{
    Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;

/// How often the epoch advances, i.e. how often a running guest checks the CPU limit.
/// Why 10 ms: fine enough that a 30 s limit is exact to 0.03 %, coarse enough to cost nothing.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The T in `Store<T>`.
pub(crate) struct RunState {
    pub wasi: WasiP1Ctx,
    pub limiter: Limiter,
    /// The capability surface of a run; `None` in an instance that only compiles, whose
    /// capability imports trap.
    pub caps: Option<Capabilities>,
    /// When the store was made: the CPU limit counts from here until the guest first waits.
    pub created: std::time::Instant,
}

impl RunState {
    /// When the guest last waited on the host (or started).
    fn last_yield(&self) -> std::time::Instant {
        self.caps.as_ref().map_or(self.created, |c| c.last_yield)
    }
}

/// Caps linear memory and tables, remembering when it said no.
pub(crate) struct Limiter {
    max_memory: usize,
    pub hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory;
        self.hit |= !ok;
        Ok(ok)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Why 100 000: QuickJS's function table is ~3 000 entries and never grows at run time.
        Ok(desired <= 100_000)
    }
}

/// How one guest run ended, before it becomes a report.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The guest called `finish`: `{ok: true, value}` or `{ok: false, error, stack?}`.
    Finished(serde_json::Value),
    /// A limit stopped it.
    Limit(LimitHit),
    /// It trapped for another reason: caused by the script (`internal: false`, e.g. the stack
    /// ran out) or a fault of the guest itself.
    Trapped { message: String, internal: bool },
}

pub(crate) struct Sandbox {
    engine: Engine,
    linker: Linker<RunState>,
    /// The guest linked for runs: WASI and the capability surface.
    guest: InstancePre<RunState>,
    /// The guest linked for compiling (`compile-src`): WASI, and capability imports that trap.
    compiler: InstancePre<RunState>,
    pub artifact: GuestArtifact,
    pub limits: Limits,
    /// How long loading the guest took (deserialising the cached artifact, or compiling it).
    pub load_time: Duration,
}

/// One engine per process: it owns the epoch ticker thread.
fn engine() -> Result<Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(e) = ENGINE.get() {
        return Ok(e.clone());
    }
    let mut cfg = Config::new();
    cfg.epoch_interruption(true);
    // A trap in a runaway recursion would otherwise capture thousands of frames; the script's
    // own JavaScript stack is what a user needs, and the guest reports it.
    cfg.wasm_backtrace_max_frames(None);
    // Why 8 MiB: room for the ~11 000 nested JavaScript calls the guest's 4 MiB shadow stack
    // allows; whichever stack runs out first, the run ends with the same clear error.
    cfg.max_wasm_stack(8 << 20);
    // The fiber an async call runs on must hold the whole wasm stack plus host frames.
    cfg.async_stack_size(9 << 20);
    let engine = Engine::new(&cfg)?;
    let ticker = engine.clone();
    std::thread::Builder::new()
        .name("wfhost-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                ticker.increment_epoch();
            }
        })?;
    Ok(ENGINE.get_or_init(|| engine).clone())
}

impl Sandbox {
    /// Loads the embedded guest (from the compile cache when possible) and checks its imports.
    pub(crate) fn new(limits: Limits, cache: &compile::Cache) -> Result<Sandbox> {
        let engine = engine()?;
        let start = std::time::Instant::now();
        let (module, artifact) = compile::load_guest(&engine, cache)?;
        let load_time = start.elapsed();
        check_imports(&module, None)?;
        let mut wasi_only = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut wasi_only, |s: &mut RunState| &mut s.wasi)?;
        let mut linker = wasi_only.clone();
        capabilities::add_to_linker(&mut linker, |s: &mut RunState| {
            s.caps
                .as_mut()
                .expect("capability imports are linked only into instances that run scripts")
        })?;
        let guest = linker.instantiate_pre(&module)?;
        wasi_only.define_unknown_imports_as_traps(&module)?;
        let compiler = wasi_only.instantiate_pre(&module)?;
        Ok(Sandbox {
            engine,
            linker,
            guest,
            compiler,
            artifact,
            limits,
            load_time,
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    fn store(&self, caps: Option<Capabilities>) -> (Store<RunState>, wasi::Captured) {
        let (wasi, captured) =
            wasi::context(usize::try_from(self.limits.max_output_bytes).unwrap_or(usize::MAX));
        let limiter = Limiter {
            max_memory: usize::try_from(self.limits.max_memory).unwrap_or(usize::MAX),
            hit: false,
        };
        let mut store = Store::new(
            &self.engine,
            RunState {
                wasi,
                limiter,
                caps,
                created: std::time::Instant::now(),
            },
        );
        store.limiter(|s| &mut s.limiter);
        // Every tick, check how long the guest has run since it last waited on the host.
        let cpu_timeout = self.limits.cpu_timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            if ctx.data().last_yield().elapsed() > cpu_timeout {
                return Err(Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::Continue(1))
        });
        (store, captured)
    }

    /// A wrapped script module's bytecode: from the compile cache, else compiled (and
    /// cached). `Ok((Err(message), _))` is a compile error in the script; the flag says whether
    /// the cache served it.
    pub(crate) async fn bytecode(
        &self,
        cache: &compile::Cache,
        module_source: &str,
    ) -> Result<(std::result::Result<Vec<u8>, String>, bool)> {
        if let Some(b) = compile::cached_bytecode(cache, module_source) {
            return Ok((Ok(b), true));
        }
        let compiled = self.compile_src(module_source).await?;
        if let Ok(b) = &compiled {
            compile::store_bytecode(cache, module_source, b);
        }
        Ok((compiled, false))
    }

    /// Compiles a wrapped script module to QuickJS bytecode with the guest's `compile-src`.
    /// `Ok(Err(message))` is a compile error in the script.
    pub(crate) async fn compile_src(
        &self,
        module_source: &str,
    ) -> Result<std::result::Result<Vec<u8>, String>> {
        let (mut store, _) = self.store(None);
        let instance = self.compiler.instantiate_async(&mut store).await?;
        let ptr = copy_in(&mut store, &instance, module_source.as_bytes()).await?;
        let f = instance.get_typed_func::<(i32, i32), i32>(&mut store, "compile-src")?;
        let len = i32::try_from(module_source.len()).context("the script is larger than 2 GiB")?;
        let ret = f.call_async(&mut store, (ptr, len)).await?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("guest exports no memory")?;
        let mut words = [0u8; 12];
        memory.read(&store, ret.cast_unsigned() as usize, &mut words)?;
        let word =
            |i: usize| u32::from_le_bytes([words[i], words[i + 1], words[i + 2], words[i + 3]]);
        let mut out = vec![0u8; word(8) as usize];
        memory.read(&store, word(4) as usize, &mut out)?;
        Ok(if word(0) == 0 {
            Ok(out)
        } else {
            Err(String::from_utf8_lossy(&out).into_owned())
        })
    }

    /// Runs compiled bytecode in a fresh guest instance ("direct mode").
    pub(crate) async fn run_bytecode(
        &self,
        bytecode: &[u8],
        caps: Capabilities,
    ) -> (Ending, Capabilities) {
        let (mut store, captured) = self.store(Some(caps));
        let result = async {
            let start = std::time::Instant::now();
            let instance = self.guest.instantiate_async(&mut store).await?;
            set_instantiate(&mut store, start.elapsed());
            let ptr = copy_in(&mut store, &instance, bytecode).await?;
            let invoke =
                instance.get_typed_func::<(i32, i32, i32, i32, i32), ()>(&mut store, "invoke")?;
            let len = i32::try_from(bytecode.len())
                .map_err(|_| wasmtime::format_err!("bytecode larger than 2 GiB"))?;
            invoke.call_async(&mut store, (ptr, len, 0, 0, 0)).await
        }
        .await;
        finish(store, &captured, result)
    }

    /// Runs a standalone module made by `wfhost compile` (a Javy dynamic module): the guest is
    /// instantiated first and linked under the module's import namespace.
    pub(crate) async fn run_module(
        &self,
        module: &Module,
        caps: Capabilities,
    ) -> (Ending, Capabilities) {
        let (mut store, captured) = self.store(Some(caps));
        let result = async {
            let start = std::time::Instant::now();
            let plugin = self.guest.instantiate_async(&mut store).await?;
            set_instantiate(&mut store, start.elapsed());
            let mut linker = self.linker.clone();
            linker.instance(&mut store, compile::PLUGIN_NAMESPACE, plugin)?;
            let instance = linker.instantiate_async(&mut store, module).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        }
        .await;
        finish(store, &captured, result)
    }
}

fn set_instantiate(store: &mut Store<RunState>, took: Duration) {
    if let Some(caps) = store.data_mut().caps.as_mut() {
        caps.instantiate = took;
    }
}

/// Turns the end of a guest call into an `Ending`, naming the limit when one was hit.
fn finish(
    store: Store<RunState>,
    captured: &wasi::Captured,
    result: wasmtime::Result<()>,
) -> (Ending, Capabilities) {
    let state = store.into_data();
    let mut caps = state
        .caps
        .expect("a run's store always holds its capabilities");
    caps.shutdown();
    // What the guest wrote to its captured stdout/stderr is output it made the host keep.
    if caps.limit_hit.is_none()
        && let Err(limit) = caps.ledger.charge(captured.len())
    {
        caps.limit_hit = Some(limit);
    }
    let ending = match (result, caps.outcome.take()) {
        // QuickJS turns a refused memory.grow into a catchable "out of memory" error.
        (Ok(()), Some(outcome)) if state.limiter.hit && outcome["ok"] != true => {
            Ending::Limit(LimitHit::Memory)
        }
        (Ok(()), _) if caps.limit_hit.is_some() => {
            Ending::Limit(caps.limit_hit.unwrap_or(LimitHit::OutputBytes))
        }
        (Ok(()), Some(outcome)) => Ending::Finished(outcome),
        (Ok(()), None) => Ending::Trapped {
            message: format!("the guest returned without an outcome{}", output(captured)),
            internal: true,
        },
        (Err(e), _) => {
            if let Some(limit) = caps.limit_hit {
                Ending::Limit(limit)
            } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                Ending::Limit(LimitHit::Cpu)
            } else if state.limiter.hit {
                Ending::Limit(LimitHit::Memory)
            } else if let Some(fault) = e.downcast_ref::<abi::ScriptFault>() {
                Ending::Trapped {
                    message: format!(
                        "the script broke the workflow runtime: {fault}\nhint: does it replace or call a built-in of the workflow API in an unusual way?"
                    ),
                    internal: false,
                }
            } else if e.downcast_ref::<Trap>() == Some(&Trap::StackOverflow)
                || shadow_stack_overflow(&e)
            {
                Ending::Trapped {
                    message: STACK_MESSAGE.into(),
                    internal: false,
                }
            } else {
                Ending::Trapped {
                    message: format!("the guest trapped: {}{}", e.root_cause(), output(captured)),
                    internal: true,
                }
            }
        }
    };
    (ending, caps)
}

const STACK_MESSAGE: &str = "RangeError: Maximum call stack size exceeded (the script recursed too deeply)\n\
    hint: QuickJS on WebAssembly cannot catch this; bound the recursion or make it a loop";

/// The guest's shadow stack sits first in linear memory and grows down from 4 MiB, so an
/// overflow wraps to an address just below 4 GiB and traps instead of corrupting the heap.
/// QuickJS compiles its own recursion check out on WASI, so this is how deep recursion ends.
fn shadow_stack_overflow(e: &wasmtime::Error) -> bool {
    e.chain().any(|cause| {
        let text = cause.to_string();
        text.split("memory fault at wasm address 0x")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next())
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .is_some_and(|address| address >= 0xffff_0000)
    })
}

fn output(captured: &wasi::Captured) -> String {
    let text = captured.text();
    if text.trim().is_empty() {
        String::new()
    } else {
        format!("\nguest output:\n{}", text.trim_end())
    }
}

/// Copies `bytes` into a fresh allocation in the guest; returns the pointer.
async fn copy_in(
    store: &mut Store<RunState>,
    instance: &wasmtime::Instance,
    bytes: &[u8],
) -> wasmtime::Result<i32> {
    let realloc =
        instance.get_typed_func::<(i32, i32, i32, i32), i32>(&mut *store, "cabi_realloc")?;
    let len = i32::try_from(bytes.len())
        .map_err(|_| wasmtime::format_err!("more than 2 GiB for the guest"))?;
    let ptr = realloc.call_async(&mut *store, (0, 0, 1, len)).await?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| wasmtime::format_err!("the guest exports no memory"))?;
    memory.write(&mut *store, ptr.cast_unsigned() as usize, bytes)?;
    Ok(ptr)
}

/// What one import is, and whether the sandbox allows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ImportCheck {
    pub module: String,
    pub name: String,
    pub allowed: bool,
    /// Why an allowed name is still refused (its type could not link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An import's type the way `audit` prints signatures: `(i32, i64) -> i32`, `memory`.
fn signature(ty: &wasmtime::ExternType) -> String {
    match ty {
        wasmtime::ExternType::Func(f) => {
            let list = |tys: Vec<String>| tys.join(", ");
            let params = list(f.params().map(|p| p.to_string()).collect());
            let results: Vec<String> = f.results().map(|r| r.to_string()).collect();
            let results = match results.len() {
                0 => "()".to_string(),
                1 => results[0].clone(),
                _ => format!("({})", list(results)),
            };
            format!("({params}) -> {results}")
        }
        wasmtime::ExternType::Memory(_) => "memory".into(),
        wasmtime::ExternType::Table(_) => "table".into(),
        wasmtime::ExternType::Global(_) => "global".into(),
        wasmtime::ExternType::Tag(_) => "tag".into(),
    }
}

/// Lists a module's imports against the allow-list. `plugin_namespace`: a standalone module
/// may import the guest's exports under this namespace (and nothing else).
pub(crate) fn audit_imports(module: &Module, plugin_namespace: Option<&str>) -> Vec<ImportCheck> {
    module
        .imports()
        .map(|i| {
            let table: &[(&str, &str)] = match (plugin_namespace, i.module()) {
                (Some(ns), m) if m == ns => compile::PLUGIN_SIGNATURES,
                (Some(_), _) => &[],
                (None, wasi::WASI_MODULE) => wasi::WASI_SIGNATURES,
                (None, capabilities::MODULE) => capabilities::FUNCTIONS,
                (None, _) => &[],
            };
            let expected = table
                .iter()
                .find(|(n, _)| *n == i.name())
                .map(|(_, sig)| *sig);
            let declared = signature(&i.ty());
            let reason = match expected {
                Some(want) if want != declared => Some(format!(
                    "its type is `{declared}`, but wfhost provides `{want}`: it could not link"
                )),
                _ => None,
            };
            ImportCheck {
                module: i.module().to_string(),
                name: i.name().to_string(),
                allowed: expected.is_some() && reason.is_none(),
                reason,
            }
        })
        .collect()
}

/// Refuses a module that imports anything outside the allow-list, naming the import.
pub(crate) fn check_imports(module: &Module, plugin_namespace: Option<&str>) -> Result<()> {
    if let Some(bad) = audit_imports(module, plugin_namespace)
        .into_iter()
        .find(|i| !i.allowed)
    {
        let why = bad
            .reason
            .as_deref()
            .unwrap_or("which is outside wfhost's capability surface");
        return Err(crate::ExitError::refused(format!(
            "refused: the module imports `{}::{}`, {why}",
            bad.module, bad.name
        ))
        .hint("`wfhost audit` lists what a module may import; wfhost never links filesystem, socket, env or clock access")
        .into());
    }
    Ok(())
}
