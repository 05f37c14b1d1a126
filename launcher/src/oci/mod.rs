//! `strata-runtime`: an OCI runtime with runc's command line, on the launcher's
//! container core (`crate::runtime`): `create` translates a bundle's `config.json`
//! into a [`crate::runtime::RunSpec`] and runs the same setup process and init that
//! `strata run` does, with the exec fifo and state directory runc keeps.
//!
//! Modules: [`cli`] (the command line, liboci-cli's), [`log`] (errors as text or
//! runc's JSON lines), [`config`] (config.json → `RunSpec`, refusing what is not
//! honoured), [`seccomp`] (`linux.seccomp` → the core's filter plan), [`names`]
//! (capability, rlimit and signal names), [`state`] (the state
//! directory, its lock and status), [`console`] (`--console-socket`), [`hooks`] (poststart,
//! poststop), [`commands`].

pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod hooks;
pub mod log;
pub mod names;
pub mod seccomp;
pub mod state;

use std::process::ExitCode;

/// Runs `strata-runtime` with the process's arguments; the exit status to exit with.
pub fn main() -> ExitCode {
    // Rust starts with SIGPIPE ignored; a runtime (and the container processes it
    // forks, which keep it across exec) want the default: `strata-runtime list | head`
    // ends quietly, `yes | head` in a container too, as under runc.
    let _ = crate::sys::process::default_signal(nix::sys::signal::Signal::SIGPIPE);
    let parsed = match cli::parse(std::env::args_os()) {
        Ok(p) => p,
        Err(e) => {
            // Help and --version print to stdout and exit 0; bad usage exits 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let cli::Parsed::Command(cli) = parsed else {
        print!("{}", cli::version_text());
        return ExitCode::SUCCESS;
    };
    let logger = log::Logger::new(&cli.global);
    match commands::dispatch(&cli, &logger) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            logger.error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}
