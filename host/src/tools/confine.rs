//! The kernel's confinement of an agent's `Bash` call: `wfhost __confine`, a helper the host
//! starts for each call, applies it to itself and then runs the command.
//!
//! In this order, in a single-threaded process (before any async runtime exists):
//! 1. its parent's death kills it (`PR_SET_PDEATHSIG`);
//! 2. new **network** and **PID namespaces** (`unshare`; inside a new user namespace when not
//!    root): no interface but a loopback that is down — no TCP, UDP, or any other family
//!    reaches a host, this one included — and every process the command starts dies with it
//!    (`setsid` does not escape a PID namespace whose init has died);
//! 3. **rlimits**: CPU seconds, the largest file it may write, no core dumps;
//! 4. **Landlock** (ABI 4 required; up to 6 used): read and execute only the system's
//!    directories (`/usr`, `/bin`, `/sbin`, `/lib*`, `/etc`) and a few devices, read and write
//!    only the `--rw` directories (the workspace, a private temp dir); TCP bind and connect
//!    denied; signals and abstract Unix sockets scoped to the sandbox. No `/proc`, no `$HOME`,
//!    no sibling of the workspace;
//! 5. fork: the child (PID 1 of the new namespace) executes the command; the helper waits and
//!    exits with its status.
//!
//! When the kernel refuses any of it, the helper exits with `UNAVAILABLE` and says why on
//! stderr: `Bash` is then refused (or, with `[tools] unconfined_bash = true`, run without).

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt as _;

/// The argument that selects the helper (`wfhost __confine …`); not a documented command.
pub const ARG: &str = "__confine";
/// The helper's exit code when the kernel cannot confine the command.
pub(crate) const UNAVAILABLE: i32 = 125;
/// What the helper's refusal starts with on stderr.
pub(crate) const REFUSED: &str = "wfhost-confine: ";

/// Read and execute, never write: the system's programs and libraries.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];
/// Devices a shell needs (write: the null sink and the terminal-less standard ones).
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// Whether this machine's kernel confines `Bash` calls (`wfhost audit`): the helper is run
/// once on `/bin/true` with the workspace as its only writable directory.
pub(crate) fn probe(workspace: &std::path::Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("no path to wfhost: {e}"))?;
    let out = std::process::Command::new(exe)
        .arg(ARG)
        .arg("--rw")
        .arg(workspace)
        .args(["--", "/bin/true"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start the helper: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err
        .trim()
        .strip_prefix(REFUSED)
        .unwrap_or(err.trim())
        .to_string())
}

/// The helper's options, as `bash::call` passes them.
struct Options {
    rw: Vec<OsString>,
    /// Hidden under an empty read-only tmpfs (wfhost's run data inside the workspace).
    hide: Vec<OsString>,
    /// Bound read-only over themselves (`.git/hooks`, `.git/config`: code git runs later).
    read_only: Vec<OsString>,
    cpu_secs: u64,
    max_file: u64,
    command: Vec<OsString>,
}

fn parse(args: &[OsString]) -> Result<Options, String> {
    let mut o = Options {
        rw: Vec::new(),
        hide: Vec::new(),
        read_only: Vec::new(),
        cpu_secs: 600,
        max_file: 1 << 30,
        command: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a:?} needs a value"));
        match a.to_str() {
            Some("--rw") => o.rw.push(value()?),
            Some("--hide") => o.hide.push(value()?),
            Some("--read-only") => o.read_only.push(value()?),
            Some("--cpu") => {
                o.cpu_secs = value()?.to_string_lossy().parse().map_err(|_| "--cpu")?;
            }
            Some("--max-file") => {
                o.max_file = value()?
                    .to_string_lossy()
                    .parse()
                    .map_err(|_| "--max-file")?;
            }
            Some("--") => {
                o.command = it.cloned().collect();
                break;
            }
            _ => return Err(format!("unknown option {a:?}")),
        }
    }
    if o.command.is_empty() {
        return Err("no command after `--`".into());
    }
    Ok(o)
}

/// `wfhost __confine [--rw DIR]… [--cpu SECS] [--max-file BYTES] -- PROGRAM ARGS…`
pub fn main(args: &[OsString]) -> i32 {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{REFUSED}{e}");
            return 2;
        }
    };
    if let Err(e) = confine(&opts) {
        eprintln!("{REFUSED}{e}");
        return UNAVAILABLE;
    }
    run(&opts.command)
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn confine(o: &Options) -> Result<(), String> {
    // SAFETY: prctl and getppid have no memory preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() == 1 {
            return Err("the host is gone".into());
        }
    }
    namespaces()?;
    mounts(o)?;
    limits(o)?;
    landlock(o)
}

/// New network and PID namespaces (in a new user namespace when not root).
fn namespaces() -> Result<(), String> {
    // SAFETY: plain syscalls, no memory handed over; this process has one thread.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        // SAFETY: as above.
        if unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWPID | libc::CLONE_NEWNS) }
            != 0
        {
            return Err(format!(
                "the kernel refused a network and PID namespace (unshare: {})",
                errno()
            ));
        }
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe {
        libc::unshare(
            libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::CLONE_NEWPID | libc::CLONE_NEWNS,
        )
    } != 0
    {
        return Err(format!(
            "the kernel refused an unprivileged user namespace for the network and PID namespaces (unshare: {}); check `kernel.unprivileged_userns_clone` / `user.max_user_namespaces`",
            errno()
        ));
    }
    // The same ids inside as outside: files the command writes keep the user's ownership.
    let write = |path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| format!("writing {path}: {e}"))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))
}

/// In the new mount namespace (private, so nothing leaks back): wfhost's run data hidden
/// under an empty read-only tmpfs; `.git/hooks` and `.git/config` bound read-only.
fn mounts(o: &Options) -> Result<(), String> {
    let c =
        |s: &std::ffi::OsStr| CString::new(s.as_bytes()).map_err(|_| "a path with NUL".to_string());
    let mount = |src: Option<&CString>,
                 target: &CString,
                 fstype: Option<&CString>,
                 flags,
                 data: Option<&CString>| {
        let p = |s: Option<&CString>| s.map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: every pointer is NULL or a valid C string that outlives the call.
        let r = unsafe { libc::mount(p(src), target.as_ptr(), p(fstype), flags, p(data).cast()) };
        if r == 0 {
            Ok(())
        } else {
            Err(format!("mount {target:?}: {}", errno()))
        }
    };
    let root = c("/".as_ref())?;
    mount(None, &root, None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    let tmpfs = c("tmpfs".as_ref())?;
    let opts = c("size=4k,mode=0500".as_ref())?;
    for h in &o.hide {
        let target = c(h)?;
        mount(
            Some(&tmpfs),
            &target,
            Some(&tmpfs),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some(&opts),
        )?;
    }
    for p in &o.read_only {
        let target = c(p)?;
        mount(
            Some(&target),
            &target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
        mount(
            None,
            &target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

fn limits(o: &Options) -> Result<(), String> {
    let set = |resource, value: u64, name: &str| {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: `lim` is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(resource, &raw const lim) } != 0 {
            return Err(format!("setrlimit({name}): {}", errno()));
        }
        Ok(())
    };
    set(libc::RLIMIT_CPU, o.cpu_secs.max(1), "RLIMIT_CPU")?;
    set(libc::RLIMIT_FSIZE, o.max_file, "RLIMIT_FSIZE")?;
    set(libc::RLIMIT_CORE, 0, "RLIMIT_CORE")
}

fn landlock(o: &Options) -> Result<(), String> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
    };
    let fail = |e: &dyn std::fmt::Display| format!("Landlock: {e}");
    let existing = |paths: &[&str]| -> Vec<String> {
        paths
            .iter()
            .filter(|p| std::path::Path::new(p).exists())
            .map(|p| (*p).to_string())
            .collect()
    };
    // Required: the file and TCP rights of ABI 4 (Linux 6.7). Best effort: what later ABIs
    // add (ioctl on devices, scoped signals and abstract Unix sockets).
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V4))
        .map_err(|e| fail(&e))?
        .handle_access(AccessNet::from_all(ABI::V4))
        .map_err(|e| fail(&e))?;
    let created = ruleset
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI::V6))
        .map_err(|e| fail(&e))?
        .scope(Scope::from_all(ABI::V6))
        .map_err(|e| fail(&e))?
        .create()
        .map_err(|e| fail(&e))?
        .add_rules(path_beneath_rules(
            existing(SYSTEM_DIRS),
            AccessFs::from_read(ABI::V6),
        ))
        .map_err(|e| fail(&e))?
        .add_rules(path_beneath_rules(
            existing(DEVICES),
            AccessFs::from_file(ABI::V6) & !AccessFs::Execute,
        ))
        .map_err(|e| fail(&e))?
        .add_rules(path_beneath_rules(&o.rw, AccessFs::from_all(ABI::V6)))
        .map_err(|e| fail(&e))?;
    let status = created.restrict_self().map_err(|e| fail(&e))?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(
            "Landlock is not enforced by this kernel (not enabled in the LSM list?)".into(),
        );
    }
    Ok(())
}

/// Forks: the child (PID 1 of the new PID namespace) executes the command; this process waits
/// and exits as it did (a signal `n` as 128 + n, the shell's convention).
fn run(command: &[OsString]) -> i32 {
    let Ok(argv) = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        eprintln!("{REFUSED}the command contains a NUL byte");
        return 2;
    };
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: this process has one thread, so the child may do anything before exec; `ptrs`
    // is a NULL-terminated array of valid C strings that outlives the exec.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            eprintln!("{REFUSED}fork: {}", errno());
            return UNAVAILABLE;
        }
        if pid == 0 {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            libc::execvp(ptrs[0], ptrs.as_ptr());
            eprintln!(
                "wfhost-confine: cannot execute {:?}: {}",
                command[0],
                errno()
            );
            libc::_exit(127);
        }
        let mut status = 0;
        while libc::waitpid(pid, &raw mut status, 0) < 0 {
            if errno().kind() != std::io::ErrorKind::Interrupted {
                return 1;
            }
        }
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    }
}
