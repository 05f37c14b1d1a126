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
    /// `events --interval`, as runc takes it (a Go duration: `5s`, `500ms`, `1m`);
    /// liboci-cli's own field only takes whole seconds.
    pub events_interval: Option<std::time::Duration>,
}

/// Parses `args` (the program name first). `--version` wins over a command; no
/// command is a usage error.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, clap::Error> {
    let args: Vec<OsString> = args.into_iter().collect();
    let (args, events_interval) = take_events_interval(args)?;
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
        events_interval,
    })))
}

/// After an `events` argument, takes each `--interval D` / `--interval=D` out of
/// clap's way (leaving `0` for liboci-cli's whole-seconds field) and returns the last
/// as a duration.
fn take_events_interval(
    mut args: Vec<OsString>,
) -> Result<(Vec<OsString>, Option<std::time::Duration>), clap::Error> {
    let Some(events) = args.iter().position(|a| a == "events") else {
        return Ok((args, None));
    };
    let mut interval = None;
    let mut i = events + 1;
    while i < args.len() {
        let Some(arg) = args[i].to_str() else {
            i += 1;
            continue;
        };
        if arg == "--" {
            break;
        }
        let (value, at) = if arg == "--interval" {
            (
                args.get(i + 1).map(|v| v.to_string_lossy().into_owned()),
                i + 1,
            )
        } else if let Some(v) = arg.strip_prefix("--interval=") {
            (Some(v.to_string()), i)
        } else {
            i += 1;
            continue;
        };
        let Some(value) = value else { break };
        let d = parse_duration(&value).map_err(|e| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("strata-runtime: --interval {value:?}: {e}\n"),
            )
        })?;
        interval = Some(d);
        args[at] = if at == i {
            "--interval=0".into()
        } else {
            "0".into()
        };
        i = at + 1;
    }
    Ok((args, interval))
}

/// A Go duration as runc's flags take it: numbers with units (`ns`, `us`/`µs`, `ms`,
/// `s`, `m`, `h`), summed (`1m30s`, `1.5s`); a bare number is seconds (liboci-cli's
/// form).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{num:?} is not a number (a duration: 5s, 500ms, 1m)"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err("a unit is missing (ns, us, ms, s, m, h)".into()),
            other => return Err(format!("unknown unit {other:?} (ns, us, ms, s, m, h)")),
        };
        total += n * scale;
        rest = next;
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|e| e.to_string())
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
    fn events_interval_is_a_go_duration() {
        let p = parse(args(&[
            "strata-runtime",
            "events",
            "--interval",
            "200ms",
            "c1",
        ]));
        let Ok(Parsed::Command(c)) = p else {
            panic!("not parsed: {p:?}");
        };
        assert_eq!(
            c.events_interval,
            Some(std::time::Duration::from_millis(200))
        );
        let p = parse(args(&[
            "strata-runtime",
            "events",
            "--interval=1m",
            "--stats",
            "c1",
        ]));
        let Ok(Parsed::Command(c)) = p else {
            panic!("not parsed: {p:?}");
        };
        assert_eq!(c.events_interval, Some(std::time::Duration::from_secs(60)));
        assert!(
            parse(args(&[
                "strata-runtime",
                "events",
                "--interval",
                "5x",
                "c1"
            ]))
            .is_err()
        );
        assert_eq!(parse_duration("5"), Ok(std::time::Duration::from_secs(5)));
        assert_eq!(
            parse_duration("1m30s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("1.5s"),
            Ok(std::time::Duration::from_millis(1500))
        );
        assert!(parse_duration("10").is_ok() && parse_duration("ms").is_err());
    }

    #[test]
    fn a_command_is_required() {
        assert!(parse(args(&["strata-runtime"])).is_err());
    }
}
