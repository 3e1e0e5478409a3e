//! The wfhost guest: a Javy plugin (QuickJS on wasm32-wasip1) that runs one workflow script.
//!
//! It implements the Javy plugin ABI itself — `initialize-runtime`, `compile-src`, `invoke`,
//! `cabi_realloc`, `memory` and the `import_namespace` custom section — instead of using
//! `javy-plugin-api`, because the stock `invoke` returns as soon as QuickJS has no runnable job.
//! A workflow waits on agents that run in the host, so our `invoke` runs its own event loop:
//!
//! 1. run every pending QuickJS job (promise reactions);
//! 2. if the script's top-level function has settled, hand the outcome to the host and stop;
//! 3. if nothing is outstanding (no agent, no timer) the script can never finish: report a
//!    deadlock instead of a silent success;
//! 4. otherwise block in the host import `wait-next`, deliver the finished job, and loop.
//!
//! The script API itself (agent, parallel, pipeline, …) is JavaScript: `../prelude/prelude.js`,
//! evaluated in `initialize-runtime` so that it is part of the pre-initialised snapshot.

mod host;
mod locale;

use javy::{
    Config, Runtime, from_js_error,
    quickjs::{Ctx, Function, Module, Object, Persistent, Value, prelude::Func, qjs},
};
use std::{alloc::Layout, cell::RefCell, ffi::c_void, ptr::NonNull, slice};

/// The namespace under which a Javy dynamic module imports this plugin (`wfhost compile`).
#[unsafe(link_section = "import_namespace")]
pub static IMPORT_NAMESPACE: [u8; 16] = *b"wfhost_plugin_v1";

const PRELUDE: &str = include_str!("../../prelude/prelude.js");

/// QuickJS-ng compiles its stack check out on WASI, so this setting is inert today; it is kept
/// below the 4 MiB shadow stack (guest-sdk/env.sh) so that it stays safe if the check is ever compiled in. Runaway
/// recursion overflows the shadow stack, which traps (see the host's `shadow_stack_overflow`).
const MAX_JS_STACK: usize = 512 * 1024;

struct Guest {
    rt: Runtime,
    /// The object the prelude returned: `start`, `deliver`, `status`.
    internals: Persistent<Object<'static>>,
    /// `internals.deliver` and `internals.status`, looked up once: the event loop calls them
    /// for every finished agent.
    deliver: Persistent<Function<'static>>,
    status: Persistent<Function<'static>>,
}

thread_local! {
    static GUEST: RefCell<Option<Guest>> = const { RefCell::new(None) };
    /// Promises rejected with no handler attached (yet): (promise, reason).
    static UNHANDLED: RefCell<Vec<(Persistent<Value<'static>>, Persistent<Value<'static>>)>> =
        const { RefCell::new(Vec::new()) };
    /// The last `compile-src` result, kept alive for the host to read: [tag, ptr, len].
    static COMPILED: RefCell<(Vec<u8>, [u32; 3])> = const { RefCell::new((Vec::new(), [0; 3])) };
}

fn with_guest<R>(f: impl FnOnce(&Guest) -> R) -> R {
    GUEST.with(|g| {
        let g = g.borrow();
        f(g.as_ref().expect("wfhost guest is not initialised: run Wizer on `initialize-runtime`"))
    })
}

// ------------------------------------------------------------------ initialisation

#[unsafe(export_name = "initialize-runtime")]
pub extern "C" fn initialize_runtime() {
    let guest = init().unwrap_or_else(|e| fatal(&format!("wfhost guest failed to initialise: {e:#}")));
    GUEST.with(|g| *g.borrow_mut() = Some(guest));
}

fn init() -> anyhow::Result<Guest> {
    let mut cfg = Config::default();
    cfg.text_encoding(true).javy_stream_io(false).max_stack_size(MAX_JS_STACK);
    let rt = Runtime::new(cfg)?;
    let internals = rt
        .context()
        .with(|ctx| -> javy::quickjs::Result<_> {
            // SAFETY: the tracker only records values in UNHANDLED; the runtime outlives it.
            unsafe {
                qjs::JS_SetHostPromiseRejectionTracker(
                    qjs::JS_GetRuntime(ctx.as_raw().as_ptr()),
                    Some(track_rejection),
                    std::ptr::null_mut(),
                );
            }
            let host = Object::new(ctx.clone())?;
            host.set("spawn", Func::from(|req: String| host::spawn(&req)))?;
            host.set(
                "spawnAgent",
                Func::from(
                    |prompt: String,
                     label: String,
                     phase: String,
                     workflow: String,
                     group: Vec<u32>,
                     options: String| {
                        let g = [0, 1, 2, 3].map(|i| group.get(i).copied().unwrap_or(0));
                        // A handle fits in a JS number exactly; -1 is a refusal.
                        host::spawn_agent(&prompt, &label, &phase, &workflow, g, &options) as f64
                    },
                ),
            )?;
            host.set("takeError", Func::from(host::take_error))?;
            host.set("cancel", Func::from(host::cancel))?;
            host.set("log", Func::from(|level: u32, msg: String| host::log(level, &msg)))?;
            host.set("phase", Func::from(|title: String| host::phase(&title)))?;
            host.set("loadWorkflow", Func::from(load_workflow))?;
            host.set(
                "collate",
                Func::from(|a: String, b: String, numeric: bool, sensitivity: u32| {
                    locale::compare(&a, &b, numeric, sensitivity)
                }),
            )?;
            host.set(
                "formatNumber",
                Func::from(|x: f64, min: u32, max: u32, grouping: bool| locale::format_number(x, min, max, grouping)),
            )?;
            let prelude: Function = ctx.eval(PRELUDE)?;
            let internals: Object = prelude.call((host,))?;
            let deliver: Function = internals.get("deliver")?;
            let status: Function = internals.get("status")?;
            Ok((Persistent::save(&ctx, internals), Persistent::save(&ctx, deliver), Persistent::save(&ctx, status)))
        })
        .map_err(|e| rt.context().with(|cx| from_js_error(cx.clone(), e)))?;
    let (internals, deliver, status) = internals;
    Ok(Guest { rt, internals, deliver, status })
}

/// QuickJS calls this when a promise is rejected with no handler (`handled == false`) and when
/// a handler is attached to such a promise later (`handled == true`).
unsafe extern "C" fn track_rejection(
    ctx: *mut qjs::JSContext,
    promise: qjs::JSValue,
    reason: qjs::JSValue,
    handled: bool,
    _opaque: *mut c_void,
) {
    // SAFETY: QuickJS passes a live context and borrowed values; we take our own references.
    let ctx = unsafe { Ctx::from_raw(NonNull::new_unchecked(ctx)) };
    let promise = unsafe { Value::from_raw(ctx.clone(), qjs::JS_DupValue(ctx.as_raw().as_ptr(), promise)) };
    UNHANDLED.with(|u| {
        let mut u = u.borrow_mut();
        if handled {
            u.retain(|(p, _)| p.clone().restore(&ctx).map(|p| p != promise).unwrap_or(true));
        } else {
            let reason = unsafe { Value::from_raw(ctx.clone(), qjs::JS_DupValue(ctx.as_raw().as_ptr(), reason)) };
            u.push((Persistent::save(&ctx, promise), Persistent::save(&ctx, reason)));
        }
    });
}

/// `workflow()`: the host resolves, reads and checks the child script and returns it already
/// wrapped as a module whose default export takes the child's API object. We compile it here
/// (this is not `eval`: the source comes from the host, never from the script's strings).
fn load_workflow<'js>(ctx: Ctx<'js>, request: String) -> javy::quickjs::Result<Object<'js>> {
    thread_local!(static SEQ: RefCell<u32> = const { RefCell::new(0) });
    let reply = host::load_workflow(&request);
    let parsed: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
    let out = Object::new(ctx.clone())?;
    if let (Some(name), Some(source)) = (parsed["name"].as_str(), parsed["source"].as_str()) {
        let seq = SEQ.with(|s| {
            *s.borrow_mut() += 1;
            *s.borrow()
        });
        let module = Module::declare(ctx.clone(), format!("workflow:{name}#{seq}"), source)?;
        let (module, _) = module.eval()?;
        let main: Function = module.get("default")?;
        out.set("name", name)?;
        out.set("main", main)?;
    } else {
        let error = ctx.json_parse(serde_json::to_string(&parsed["error"]).unwrap_or_default())?;
        out.set("error", error)?;
    }
    Ok(out)
}

// ------------------------------------------------------------------ the Javy plugin ABI

/// # Safety
/// The canonical ABI allocator: `old`/`align` must describe a live allocation (or be zero).
#[unsafe(export_name = "cabi_realloc")]
pub unsafe extern "C" fn cabi_realloc(ptr: *mut u8, old: usize, align: usize, new: usize) -> *mut u8 {
    if new == 0 {
        return align as *mut u8;
    }
    let layout = |size| Layout::from_size_align(size, align).unwrap_or_else(|_| fatal("cabi_realloc: bad layout"));
    let p = unsafe {
        if ptr.is_null() || old == 0 {
            std::alloc::alloc(layout(new))
        } else {
            std::alloc::realloc(ptr, layout(old), new)
        }
    };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout(new));
    }
    p
}

/// Compiles a module (already checked and wrapped by the host) to QuickJS bytecode.
/// Returns a pointer to `[tag, ptr, len]`: tag 0 → bytecode, tag 1 → UTF-8 error message.
///
/// # Safety
/// `ptr..ptr+len` must be readable guest memory.
#[unsafe(export_name = "compile-src")]
pub unsafe extern "C" fn compile_src(ptr: *const u8, len: usize) -> *const u32 {
    let src = String::from_utf8_lossy(unsafe { slice::from_raw_parts(ptr, len) }).into_owned();
    let (tag, bytes) = match with_guest(|g| g.rt.compile_to_bytecode("workflow.js", &src)) {
        Ok(b) => (0, b),
        Err(e) => (1, format!("{e}").into_bytes()),
    };
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        c.0 = bytes;
        c.1 = [tag, c.0.as_ptr() as u32, c.0.len() as u32];
        c.1.as_ptr()
    })
}

/// Runs a compiled workflow to completion and hands its outcome to the host (`finish`).
///
/// # Safety
/// `bytecode_ptr..+bytecode_len` must hold bytecode produced by `compile-src` of this plugin.
#[unsafe(export_name = "invoke")]
pub unsafe extern "C" fn invoke(
    bytecode_ptr: *const u8,
    bytecode_len: usize,
    _has_fn: u32,
    _fn_ptr: *const u8,
    _fn_len: usize,
) {
    let bytecode = unsafe { slice::from_raw_parts(bytecode_ptr, bytecode_len) };
    let outcome = with_guest(|g| run(g, bytecode)).unwrap_or_else(|e| failure(&format!("{e:#}")));
    host::finish(&outcome);
}

fn failure(message: &str) -> String {
    serde_json::json!({ "ok": false, "error": message }).to_string()
}

fn run(g: &Guest, bytecode: &[u8]) -> anyhow::Result<String> {
    let js = |f: &dyn for<'js> Fn(Ctx<'js>, Object<'js>) -> javy::quickjs::Result<Option<String>>| {
        g.rt.context()
            .with(|ctx| {
                let internals = g.internals.clone().restore(&ctx)?;
                f(ctx.clone(), internals)
            })
            .map_err(|e| g.rt.context().with(|cx| from_js_error(cx.clone(), e)))
    };

    let context = host::context();
    js(&|ctx, internals| {
        // SAFETY: the bytecode was produced by `compile-src` of this very plugin.
        let module = unsafe { Module::load(ctx.clone(), bytecode)? };
        let (module, _) = module.eval()?;
        let main: Function = module.get("default")?;
        let start: Function = internals.get("start")?;
        start.call::<_, ()>((context.clone(), main))?;
        Ok(None)
    })?;

    let outcome = loop {
        g.rt.resolve_pending_jobs()?;
        let state = js(&|ctx, _| g.status.clone().restore(&ctx)?.call(()))?;
        match state {
            Some(o) if o.is_empty() => {
                break failure(
                    "workflow deadlock: the script is waiting on a promise that can never settle \
                     (no agent or timer is running)\nhint: every awaited promise must come from \
                     agent(), parallel(), pipeline(), workflow() or setTimeout()",
                );
            }
            Some(o) => break o,
            None => {}
        }
        let done = RefCell::new(Some(host::wait_next()));
        js(&|ctx, _| {
            let Some(done) = done.borrow_mut().take() else { return Ok(None) };
            // `spent` is an output-token count: exact as a JS number far beyond any budget.
            g.deliver.clone().restore(&ctx)?.call::<_, ()>((
                done.handle,
                done.kind,
                done.spent as f64,
                done.payload,
            ))?;
            Ok(None)
        })?;
    };

    // A rejection nobody handled is an error the script would otherwise lose silently.
    let unhandled = g.rt.context().with(|ctx| {
        UNHANDLED.with(|u| {
            let u = u.borrow();
            let (_, reason) = u.first()?;
            let reason = reason.clone().restore(&ctx).ok()?;
            let string: Function = ctx.globals().get("String").ok()?;
            string.call::<_, String>((reason,)).ok()
        })
    });
    match unhandled {
        // The prelude serialises `{ok, …}` with `ok` first, so the prefix is exact.
        Some(reason) if outcome.starts_with("{\"ok\":true") => Ok(failure(&format!(
            "unhandled promise rejection: {reason}\nhint: await the promise, or attach .catch() to it"
        ))),
        _ => Ok(outcome),
    }
}

fn fatal(message: &str) -> ! {
    eprintln!("{message}");
    std::process::abort()
}
