//! `strata pull`, `strata push`, `strata login`, `strata logout`: the registry commands, with podman's
//! flags. The work is the `registry` crate's.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use registry::platform::Platform;
use registry::{Credentials, PullOptions, PushOptions, TlsOptions};
use store::Store;

/// TLS flags shared by the registry commands.
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// Check the registry's TLS certificate (`--tls-verify=false` also allows plain
    /// HTTP).
    #[arg(long = "tls-verify", value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// More CA certificates (`*.crt`) for the registry.
    #[arg(long = "cert-dir", value_name = "DIR")]
    cert_dir: Option<PathBuf>,
}

impl TlsArgs {
    fn options(&self) -> TlsOptions {
        TlsOptions {
            verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
        }
    }
}

/// `strata pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// `OS/ARCH[/VARIANT]` to pick from a multi-platform image (default: this machine).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// `USER:PASSWORD` for the registry (default: what `strata login` stored).
    #[arg(long, value_name = "USER:PASSWORD")]
    creds: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// No progress output.
    #[arg(short, long)]
    quiet: bool,
    /// `[HOST[:PORT]/]NAME[:TAG|@sha256:DIGEST]`.
    reference: String,
}

/// `strata push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// `USER:PASSWORD` for the registry (default: what `strata login` stored).
    #[arg(long, value_name = "USER:PASSWORD")]
    creds: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// No progress output.
    #[arg(short, long)]
    quiet: bool,
    /// Write the manifest digest to FILE.
    #[arg(long, value_name = "FILE")]
    digestfile: Option<PathBuf>,
    /// The image in the store (name, tag or id).
    image: String,
    /// `[docker://]HOST[:PORT]/NAME:TAG` (default: IMAGE's own name).
    destination: Option<String>,
}

/// `strata login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// User name.
    #[arg(short, long)]
    username: Option<String>,
    /// Password (visible to other users in `ps`: prefer --password-stdin).
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// `HOST[:PORT]`.
    registry: String,
}

/// `strata logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// `HOST[:PORT]`.
    registry: String,
}

/// Runs `strata pull`: prints the image id when done (progress goes to stderr).
pub fn pull(root: Option<PathBuf>, args: PullArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let opts = PullOptions {
        platform: args.platform.as_deref().map(Platform::parse).transpose()?,
        creds: args.creds.as_deref().map(Credentials::parse).transpose()?,
        tls: args.tls.options(),
        quiet: args.quiet,
    };
    let img = registry::pull(&store, &args.reference, &opts)?;
    println!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata push`.
pub fn push(root: Option<PathBuf>, args: PushArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let opts = PushOptions {
        creds: args.creds.as_deref().map(Credentials::parse).transpose()?,
        tls: args.tls.options(),
        quiet: args.quiet,
    };
    let (dest, digest) = registry::push(&store, &args.image, args.destination.as_deref(), &opts)?;
    if let Some(f) = &args.digestfile {
        std::fs::write(f, &digest).with_context(|| format!("write {}", f.display()))?;
    }
    log::info!("pushed {dest} ({digest})");
    Ok(ExitCode::SUCCESS)
}

/// One line from stdin, without its line end.
fn read_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("read the {what} from stdin"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Asks for the password on the terminal with echo off.
fn prompt_password() -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("Password: ");
    let _ = std::io::stderr().flush();
    let saved = tcgetattr(&stdin).context("read the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turn the terminal echo off")?;
    let line = read_line("password");
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    line
}

/// Runs `strata login`.
pub fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) => u,
        None if interactive && !args.password_stdin => {
            eprint!("Username: ");
            let _ = std::io::stderr().flush();
            read_line("user name")?
        }
        None => bail!("login to {}: no user name (give -u USER)", args.registry),
    };
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are exclusive"),
        (Some(p), false) => p,
        (None, true) => read_line("password")?,
        (None, false) if interactive => prompt_password()?,
        (None, false) => bail!(
            "login to {}: no password (give --password-stdin or -p)",
            args.registry
        ),
    };
    if username.is_empty() {
        bail!("login to {}: the user name is empty", args.registry);
    }
    let creds = Credentials { username, password };
    let file = registry::login::login(&args.registry, &creds, &args.tls.options())
        .with_context(|| format!("login to {}", args.registry))?;
    log::info!("credentials stored in {}", file.display());
    println!("Login Succeeded!");
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata logout`.
pub fn logout(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    if registry::login::logout(&args.registry)? {
        println!("Removed login credentials for {}", args.registry);
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("not logged into {}", args.registry)
    }
}
