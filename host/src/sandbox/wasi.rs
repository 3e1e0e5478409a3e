//! The WASI preview-1 context a guest gets: deny-by-default.
//!
//! No preopened directories, no environment, no arguments, no sockets, no inherited stdio
//! (stdout/stderr are captured in bounded in-memory pipes, stdin is empty), and a clock and a
//! random source that are constants — a script must not be able to observe time or entropy,
//! because a re-run or a resume has to see exactly what the first run saw.

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtxBuilder, p1::WasiP1Ctx,
};

/// The only WASI preview-1 functions a guest may import. Everything else — `path_open`,
/// `sock_*`, `fd_prestat_*`, `args_*`, `poll_oneoff` … — is refused before instantiation.
/// These are exactly what the QuickJS guest's libc needs to start and to write to stdio.
pub(crate) const WASI_ALLOW: &[&str] = &[
    "fd_write",
    "fd_close",
    "fd_seek",
    "fd_fdstat_get",
    "clock_time_get",
    "random_get",
    "environ_get",
    "environ_sizes_get",
    "proc_exit",
];

pub(crate) const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// The core signature of each allowed WASI function (as `audit` prints signatures): an import
/// of the right name with another type could not link, and is refused as such.
pub(crate) const WASI_SIGNATURES: &[(&str, &str)] = &[
    ("fd_write", "(i32, i32, i32, i32) -> i32"),
    ("fd_close", "(i32) -> i32"),
    ("fd_seek", "(i32, i64, i32, i32) -> i32"),
    ("fd_fdstat_get", "(i32, i32) -> i32"),
    ("clock_time_get", "(i32, i64, i32) -> i32"),
    ("random_get", "(i32, i32) -> i32"),
    ("environ_get", "(i32, i32) -> i32"),
    ("environ_sizes_get", "(i32, i32) -> i32"),
    ("proc_exit", "(i32) -> ()"),
];

/// The captured output of a guest.
#[derive(Clone)]
pub(crate) struct Captured {
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
}

impl Captured {
    /// Bytes captured so far, both streams.
    pub(crate) fn len(&self) -> usize {
        self.stdout.contents().len() + self.stderr.contents().len()
    }

    pub(crate) fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout.contents()).into_owned();
        s.push_str(&String::from_utf8_lossy(&self.stderr.contents()));
        s
    }
}

/// Builds the guest's WASI context. `max_output` caps each captured stream.
pub(crate) fn context(max_output: usize) -> (WasiP1Ctx, Captured) {
    let captured = Captured {
        stdout: MemoryOutputPipe::new(max_output),
        stderr: MemoryOutputPipe::new(max_output),
    };
    let mut b = WasiCtxBuilder::new();
    b.stdout(captured.stdout.clone())
        .stderr(captured.stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    deterministic(&mut b);
    (b.build_p1(), captured)
}

/// Fixed clocks and a fixed random stream. Used at run time and when the guest is
/// pre-initialised (so that the snapshot is byte-for-byte reproducible).
pub fn deterministic(b: &mut WasiCtxBuilder) {
    // A fixed, arbitrary byte stream; QuickJS only uses it to seed internal hashing.
    let seed: Vec<u8> = blake3::hash(b"wfhost deterministic random v1")
        .as_bytes()
        .to_vec();
    b.secure_random(Deterministic::new(seed.clone()))
        .insecure_random(Deterministic::new(seed))
        .insecure_random_seed(0)
        .wall_clock(FixedClock)
        .monotonic_clock(FixedClock);
}

/// A clock that always reads the Unix epoch (wall) or zero (monotonic).
struct FixedClock;

impl HostWallClock for FixedClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}
