//! The command line, runc's: global options, then one of liboci-cli's subcommands
//! (`create`, `start`, `state`, `kill`, `delete` and the common ones `run`, `list`,
//! `ps`, `features`, `spec`, ...). `--version` prints runc's form.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The runtime's version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `strata-runtime [GLOBAL OPTIONS] COMMAND ...`.
#[derive(Parser, Debug)]
#[command(
    name = "strata-runtime",
    about = "An OCI runtime on strata's container core (runc's command line)",
    disable_version_flag = true
)]
pub struct Cli {
    /// runc's global options (`--root`, `--log`, `--log-format`, `--debug`,
    /// `--systemd-cgroup`).
    #[command(flatten)]
    pub global: liboci_cli::GlobalOpts,
    /// Rootless mode: `true`, `false` or `auto` (the default: rootless when not root).
    #[arg(long, value_name = "true|false|auto", num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Print the version, the runtime-spec version and the build.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Every subcommand liboci-cli parses.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// The OCI command-line interface's commands.
    #[command(flatten)]
    Standard(Box<liboci_cli::StandardCmd>),
    /// runc's other commands.
    #[command(flatten)]
    Common(Box<liboci_cli::CommonCmd>),
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// `--version`.
    Version,
    /// A command to run.
    Command(Box<CommandLine>),
}

/// A parsed command line with its command.
#[derive(Debug)]
pub struct CommandLine {
    /// The global options.
    pub global: liboci_cli::GlobalOpts,
    /// Rootless, resolved (`auto`: when not root).
    pub rootless: bool,
    /// The command.
    pub command: Command,
}

/// Parses `args` (the program name first). `--version` wins over a command; no
/// command is a usage error.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, clap::Error> {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        // liboci-cli makes kill's SIGNAL required; runc's default is SIGTERM.
        Err(e)
            if e.kind() == clap::error::ErrorKind::MissingRequiredArgument
                && args.iter().any(|a| a == "kill") =>
        {
            let mut with_term = args.clone();
            with_term.push("SIGTERM".into());
            Cli::try_parse_from(with_term).map_err(|_| e)?
        }
        Err(e) => return Err(e),
    };
    if cli.version {
        return Ok(Parsed::Version);
    }
    let Some(command) = cli.command else {
        return Err(clap::Error::raw(
            clap::error::ErrorKind::MissingSubcommand,
            "strata-runtime: a command is required (see --help)\n",
        ));
    };
    let rootless = match cli.rootless.as_deref() {
        Some("true") => true,
        Some("false") => false,
        // As runc: root of a user namespace other than the host's (rootless podman runs
        // the runtime in its own) cannot use cgroups or devices as real root does.
        None | Some("auto") => {
            !nix::unistd::geteuid().is_root() || crate::runtime::idmap::in_user_namespace()
        }
        Some(other) => {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("strata-runtime: --rootless {other:?}: expected true, false or auto\n"),
            ));
        }
    };
    Ok(Parsed::Command(Box::new(CommandLine {
        global: cli.global,
        rootless,
        command,
    })))
}

/// runc's `--version` form: the runtime's version, the runtime-spec version (the one
/// oci-spec implements), and the build.
pub fn version_text() -> String {
    format!(
        "strata-runtime version {VERSION}\nspec: {}\ncommit: {}\n",
        oci_spec::runtime::VERSION,
        option_env!("STRATA_COMMIT").unwrap_or("unknown"),
    )
}

/// The state root: `--root`, else `$XDG_RUNTIME_DIR/strata-runtime` for an
/// unprivileged caller or root of a user namespace that is not root's own (rootless
/// podman runs its runtime so, as runc decides), else `/run/strata-runtime` as root.
pub fn state_root(global: &liboci_cli::GlobalOpts) -> anyhow::Result<PathBuf> {
    if let Some(r) = &global.root {
        return Ok(r.clone());
    }
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    let root = nix::unistd::geteuid().is_root();
    let namespaced_root = root
        && crate::runtime::idmap::in_user_namespace()
        && std::env::var_os("USER").is_none_or(|u| u != "root");
    match xdg {
        Some(d) if !root || namespaced_root => Ok(PathBuf::from(d).join("strata-runtime")),
        _ if root => Ok(PathBuf::from("/run/strata-runtime")),
        _ => anyhow::bail!("--root is needed: not root and $XDG_RUNTIME_DIR is not set"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn global_options_and_a_command() {
        let p = parse(args(&[
            "strata-runtime",
            "--root",
            "/tmp/r",
            "--log",
            "/tmp/l",
            "--log-format",
            "json",
            "--rootless",
            "false",
            "state",
            "c1",
        ]));
        let Ok(Parsed::Command(c)) = p else {
            panic!("not parsed: {p:?}");
        };
        assert_eq!(c.global.root, Some(PathBuf::from("/tmp/r")));
        assert_eq!(c.global.log_format.as_deref(), Some("json"));
        assert!(!c.rootless);
        assert!(matches!(c.command, Command::Standard(ref s)
            if matches!(**s, liboci_cli::StandardCmd::State(ref st) if st.container_id == "c1")));
    }

    #[test]
    fn version_wins_and_has_three_lines() {
        assert!(matches!(
            parse(args(&["strata-runtime", "--version"])),
            Ok(Parsed::Version)
        ));
        let v = version_text();
        let lines: Vec<&str> = v.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("strata-runtime version "));
        assert!(lines[1].starts_with("spec: "));
    }

    #[test]
    fn kill_defaults_to_sigterm() {
        let p = parse(args(&["strata-runtime", "kill", "c1"]));
        let Ok(Parsed::Command(c)) = p else {
            panic!("not parsed: {p:?}");
        };
        assert!(matches!(c.command, Command::Standard(ref s)
            if matches!(**s, liboci_cli::StandardCmd::Kill(ref k) if k.signal == "SIGTERM")));
        assert!(parse(args(&["strata-runtime", "kill"])).is_err());
    }

    #[test]
    fn a_command_is_required() {
        assert!(parse(args(&["strata-runtime"])).is_err());
    }
}
