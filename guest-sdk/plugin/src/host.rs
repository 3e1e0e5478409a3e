//! The wfhost capability surface as seen from inside the guest (wit/wfhost.wit).
//!
//! Every function here is an import from the core-wasm module `wfhost`. Strings go in as
//! `(ptr, len)`; strings come back as one `i64` packing `(ptr << 32) | len` of a buffer the host
//! allocated in our memory through `cabi_realloc` (the canonical ABI's way of returning a
//! `string`). Ownership of that buffer passes to the guest.

#[link(wasm_import_module = "wfhost")]
unsafe extern "C" {
    #[link_name = "context"]
    fn wf_context() -> u64;
    #[link_name = "spawn"]
    fn wf_spawn(ptr: *const u8, len: usize) -> u64;
    #[link_name = "wait-next"]
    fn wf_wait_next() -> u64;
    #[link_name = "cancel"]
    fn wf_cancel(handle: u32);
    #[link_name = "load-workflow"]
    fn wf_load_workflow(ptr: *const u8, len: usize) -> u64;
    #[link_name = "log"]
    fn wf_log(level: u32, ptr: *const u8, len: usize);
    #[link_name = "phase"]
    fn wf_phase(ptr: *const u8, len: usize);
    #[link_name = "finish"]
    fn wf_finish(ptr: *const u8, len: usize);
}

/// Takes ownership of a host-allocated string returned as `(ptr << 32) | len`.
fn take(packed: u64) -> String {
    let ptr = (packed >> 32) as usize as *mut u8;
    let len = (packed & 0xffff_ffff) as usize;
    if len == 0 {
        return String::new();
    }
    // SAFETY: the host allocated exactly `len` bytes with align 1 through our `cabi_realloc`
    // (which uses the global allocator) and hands the buffer over to us.
    let bytes = unsafe { Vec::from_raw_parts(ptr, len, len) };
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The run context: `{ args?, budgetTotal, agentCap, capMessage }` as JSON.
pub fn context() -> String {
    take(unsafe { wf_context() })
}

/// Starts an agent or a timer; the reply is `{handle, agentsLeft}` or `{error}`.
pub fn spawn(request: &str) -> String {
    take(unsafe { wf_spawn(request.as_ptr(), request.len()) })
}

/// Blocks until some started job finishes: `{handle, value, spent}`.
pub fn wait_next() -> String {
    take(unsafe { wf_wait_next() })
}

pub fn cancel(handle: u32) {
    unsafe { wf_cancel(handle) }
}

/// Resolves a child workflow: `{name, source}` or `{error}`.
pub fn load_workflow(request: &str) -> String {
    take(unsafe { wf_load_workflow(request.as_ptr(), request.len()) })
}

pub fn log(level: u32, message: &str) {
    unsafe { wf_log(level, message.as_ptr(), message.len()) }
}

pub fn phase(title: &str) {
    unsafe { wf_phase(title.as_ptr(), title.len()) }
}

/// Hands the run's outcome to the host: `{ok: true, value}` or `{ok: false, error, stack?}`.
pub fn finish(outcome: &str) {
    unsafe { wf_finish(outcome.as_ptr(), outcome.len()) }
}
