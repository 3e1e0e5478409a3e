fn main() -> std::process::ExitCode {
    // `wfhost __confine …`: the kernel's confinement of an agent's `Bash` call, applied by a
    // fresh, single-threaded process before anything else starts (tools::confine).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == wfhost::confine::ARG) {
        let code = wfhost::confine::main(&args[2..]);
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    wfhost::main()
}
