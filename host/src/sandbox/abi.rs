//! The core-ABI glue between the host and a guest's linear memory, for any store type `T`.
//!
//! Strings go in as `(ptr, len)` of guest memory; strings come back as an `i64` packing
//! `(ptr << 32) | len` of a buffer allocated in the guest through its `cabi_realloc` export
//! (how the canonical ABI returns a `string`).

use wasmtime::{Caller, Extern, Memory};

/// The largest string a guest may pass to the host in one call. Why 64 MiB: a prompt or a
/// result larger than that is a bug, and reading it must not take the host's memory with it.
pub const MAX_GUEST_STRING: u32 = 64 << 20;

/// A guest broke the capability protocol in a way only the script can cause (an oversized
/// string, waiting with nothing outstanding after it replaced a built-in): the run fails as the
/// script's fault (exit 65), not as an internal error.
#[derive(Debug)]
pub struct ScriptFault(pub String);

impl std::fmt::Display for ScriptFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptFault {}

fn memory<T>(caller: &mut Caller<'_, T>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("the calling module exports no `memory`"),
    }
}

/// Reads `len` bytes at `ptr` of the caller's memory as text (invalid UTF-8 is replaced).
pub fn read_string<T>(caller: &mut Caller<'_, T>, ptr: u32, len: u32) -> wasmtime::Result<String> {
    if len > MAX_GUEST_STRING {
        return Err(wasmtime::Error::new(ScriptFault(format!(
            "a string of {len} bytes passed to the host is larger than the 64 MiB allowed"
        ))));
    }
    let mem = memory(caller)?;
    let mut buf = vec![0u8; len as usize];
    mem.read(&*caller, ptr as usize, &mut buf)?;
    Ok(String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Allocates `s` in the guest (through `cabi_realloc`) and returns `(ptr << 32) | len`.
pub async fn return_string<T: Send>(caller: &mut Caller<'_, T>, s: &str) -> wasmtime::Result<i64> {
    return_bytes(caller, s.as_bytes()).await
}

/// Allocates `bytes` in the guest (through `cabi_realloc`) and returns `(ptr << 32) | len`.
pub async fn return_bytes<T: Send>(caller: &mut Caller<'_, T>, s: &[u8]) -> wasmtime::Result<i64> {
    let realloc = match caller.get_export("cabi_realloc") {
        Some(Extern::Func(f)) => f.typed::<(i32, i32, i32, i32), i32>(&*caller)?,
        _ => wasmtime::bail!("the calling module exports no `cabi_realloc`"),
    };
    let len = i32::try_from(s.len())
        .map_err(|_| wasmtime::format_err!("reply too large for the guest"))?;
    if len == 0 {
        return Ok(0);
    }
    let ptr = realloc.call_async(&mut *caller, (0, 0, 1, len)).await?;
    memory(caller)?.write(&mut *caller, ptr.cast_unsigned() as usize, s)?;
    Ok(((u64::from(ptr.cast_unsigned()) << 32) | u64::from(len.cast_unsigned())).cast_signed())
}
