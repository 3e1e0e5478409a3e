//! The core-ABI glue between the host and a guest's linear memory, for any store type `T`.
//!
//! Strings go in as `(ptr, len)` of guest memory; strings come back as an `i64` packing
//! `(ptr << 32) | len` of a buffer allocated in the guest through its `cabi_realloc` export
//! (how the canonical ABI returns a `string`).

use wasmtime::{Caller, Extern, Memory, TypedFunc};

/// The largest string a guest may pass to the host in one call. Why 64 MiB: a prompt or a
/// result larger than that is a bug, and reading it must not take the host's memory with it.
pub(crate) const MAX_GUEST_STRING: u32 = 64 << 20;

/// A guest broke the capability protocol in a way only the script can cause (an oversized
/// string, waiting with nothing outstanding after it replaced a built-in): the run fails as the
/// script's fault (exit 65), not as an internal error.
#[derive(Debug)]
pub(crate) struct ScriptFault(pub String);

impl std::fmt::Display for ScriptFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptFault {}

/// The guest's `memory` and `cabi_realloc`, found by name at the first crossing and kept:
/// looking an export up by name and checking its type at every crossing was a visible share of
/// each agent's cost. A store holds one guest instance, so what is found once stays right.
#[derive(Default)]
pub(crate) struct GuestExports {
    memory: Option<Memory>,
    realloc: Option<TypedFunc<(i32, i32, i32, i32), i32>>,
}

/// Where a store's `T` keeps its [`GuestExports`].
pub(crate) trait Exports<T>:
    Fn(&mut T) -> &mut GuestExports + Copy + Send + Sync + 'static
{
}
impl<T, F: Fn(&mut T) -> &mut GuestExports + Copy + Send + Sync + 'static> Exports<T> for F {}

fn memory<T>(caller: &mut Caller<'_, T>, exports: impl Exports<T>) -> wasmtime::Result<Memory> {
    if let Some(m) = exports(caller.data_mut()).memory {
        return Ok(m);
    }
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => {
            exports(caller.data_mut()).memory = Some(m);
            Ok(m)
        }
        _ => wasmtime::bail!("the calling module exports no `memory`"),
    }
}

fn realloc<T>(
    caller: &mut Caller<'_, T>,
    exports: impl Exports<T>,
) -> wasmtime::Result<TypedFunc<(i32, i32, i32, i32), i32>> {
    if let Some(f) = &exports(caller.data_mut()).realloc {
        return Ok(f.clone());
    }
    let f = match caller.get_export("cabi_realloc") {
        Some(Extern::Func(f)) => f.typed::<(i32, i32, i32, i32), i32>(&*caller)?,
        _ => wasmtime::bail!("the calling module exports no `cabi_realloc`"),
    };
    exports(caller.data_mut()).realloc = Some(f.clone());
    Ok(f)
}

/// Reads `len` bytes at `ptr` of the caller's memory as text (invalid UTF-8 is replaced).
pub(crate) fn read_string<T>(
    caller: &mut Caller<'_, T>,
    exports: impl Exports<T>,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<String> {
    if len > MAX_GUEST_STRING {
        return Err(wasmtime::Error::new(ScriptFault(format!(
            "a string of {len} bytes passed to the host is larger than the 64 MiB allowed"
        ))));
    }
    if len == 0 {
        return Ok(String::new());
    }
    let mem = memory(caller, exports)?;
    let (start, len) = (ptr as usize, len as usize);
    let bytes = mem
        .data(&*caller)
        .get(start..start + len)
        .ok_or_else(|| wasmtime::format_err!("out of bounds memory access"))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Allocates `s` in the guest (through `cabi_realloc`) and returns `(ptr << 32) | len`.
pub(crate) async fn return_string<T: Send>(
    caller: &mut Caller<'_, T>,
    exports: impl Exports<T>,
    s: &str,
) -> wasmtime::Result<i64> {
    return_bytes(caller, exports, s.as_bytes()).await
}

/// Allocates `bytes` in the guest (through `cabi_realloc`) and returns `(ptr << 32) | len`.
pub(crate) async fn return_bytes<T: Send>(
    caller: &mut Caller<'_, T>,
    exports: impl Exports<T>,
    s: &[u8],
) -> wasmtime::Result<i64> {
    let len = i32::try_from(s.len())
        .map_err(|_| wasmtime::format_err!("reply too large for the guest"))?;
    if len == 0 {
        return Ok(0);
    }
    let realloc = realloc(caller, exports)?;
    let ptr = realloc.call_async(&mut *caller, (0, 0, 1, len)).await?;
    memory(caller, exports)?.write(&mut *caller, ptr.cast_unsigned() as usize, s)?;
    Ok(((u64::from(ptr.cast_unsigned()) << 32) | u64::from(len.cast_unsigned())).cast_signed())
}
