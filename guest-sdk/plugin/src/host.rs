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
    #[link_name = "spawn-agent"]
    fn wf_spawn_agent(
        prompt: *const u8,
        prompt_len: usize,
        label: *const u8,
        label_len: usize,
        phase: *const u8,
        phase_len: usize,
        workflow: *const u8,
        workflow_len: usize,
        group_kind: u32,
        group_id: u32,
        group_a: u32,
        group_b: u32,
        options: *const u8,
        options_len: usize,
    ) -> i64;
    #[link_name = "take-error"]
    fn wf_take_error() -> u64;
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

/// Takes ownership of a host-allocated buffer returned as `(ptr << 32) | len`.
fn take_bytes(packed: u64) -> Vec<u8> {
    let ptr = (packed >> 32) as usize as *mut u8;
    let len = (packed & 0xffff_ffff) as usize;
    if len == 0 {
        return Vec::new();
    }
    // SAFETY: the host allocated exactly `len` bytes with align 1 through our `cabi_realloc`
    // (which uses the global allocator) and hands the buffer over to us.
    unsafe { Vec::from_raw_parts(ptr, len, len) }
}

/// Takes ownership of a host-allocated string returned as `(ptr << 32) | len`.
fn take(packed: u64) -> String {
    String::from_utf8(take_bytes(packed)).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The run context: `{ args?, budgetTotal, agentCap, capMessage }` as JSON.
pub fn context() -> String {
    take(unsafe { wf_context() })
}

/// Starts an agent or a timer; the reply is `{handle, agentsLeft}` or `{error}`.
pub fn spawn(request: &str) -> String {
    take(unsafe { wf_spawn(request.as_ptr(), request.len()) })
}

/// Starts an agent: the typed hot path (no JSON around the prompt). `options` is the JSON of
/// the rarer options (schema, model, …), or empty. Returns the handle, or -1 when the host
/// refused (then `take_error` says why).
#[allow(clippy::too_many_arguments)]
pub fn spawn_agent(prompt: &str, label: &str, phase: &str, workflow: &str, group: [u32; 4], options: &str) -> i64 {
    unsafe {
        wf_spawn_agent(
            prompt.as_ptr(),
            prompt.len(),
            label.as_ptr(),
            label.len(),
            phase.as_ptr(),
            phase.len(),
            workflow.as_ptr(),
            workflow.len(),
            group[0],
            group[1],
            group[2],
            group[3],
            options.as_ptr(),
            options.len(),
        )
    }
}

/// Why the last `spawn_agent` was refused: `{name, message}`.
pub fn take_error() -> String {
    take(unsafe { wf_take_error() })
}

/// A finished job as `wait-next` hands it over: `[handle u32][kind u8][spent u64]` (little
/// endian) then the payload — kind 0: no value, 1: text (the payload), 2: JSON (the payload).
pub struct Completion {
    pub handle: u32,
    pub kind: u8,
    pub spent: u64,
    pub payload: String,
}

/// Blocks until some started job finishes.
pub fn wait_next() -> Completion {
    let bytes = take_bytes(unsafe { wf_wait_next() });
    let word = |at: usize, n: usize| bytes.get(at..at + n).unwrap_or(&[]);
    let handle = u32::from_le_bytes(word(0, 4).try_into().unwrap_or([0; 4]));
    let kind = word(4, 1).first().copied().unwrap_or(0);
    let spent = u64::from_le_bytes(word(5, 8).try_into().unwrap_or([0; 8]));
    let payload = bytes.get(13..).unwrap_or(&[]);
    let payload =
        String::from_utf8(payload.to_vec()).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Completion { handle, kind, spent, payload }
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
