//! `strata run`, `ps`, `rm`, `mount`, `unmount`: the runtime's commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Arguments of `strata run`.
#[derive(Args)]
pub struct RunArgs {
    /// Image name, NAME:TAG or id.
    pub image: String,
    /// Command and arguments (default: the image's Entrypoint/Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Arguments of `strata ps`.
#[derive(Args)]
pub struct PsArgs {}

/// Arguments of `strata rm`.
#[derive(Args)]
pub struct RmArgs {
    /// Container names or ids.
    pub containers: Vec<String>,
}

/// Arguments of `strata mount`.
#[derive(Args)]
pub struct MountArgs {
    /// Image or container.
    pub target: String,
    /// Directory to mount the union at.
    pub dir: PathBuf,
}

/// Arguments of `strata unmount`.
#[derive(Args)]
pub struct UnmountArgs {
    /// Directory a union is mounted at.
    pub dir: PathBuf,
}

/// Runs `strata run`.
pub fn run(_root: Option<PathBuf>, _args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata run: not implemented yet")
}

/// Runs `strata ps`.
pub fn ps(_root: Option<PathBuf>, _args: PsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata ps: not implemented yet")
}

/// Runs `strata rm`.
pub fn rm(_root: Option<PathBuf>, _args: RmArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata rm: not implemented yet")
}

/// Runs `strata mount`.
pub fn mount(_root: Option<PathBuf>, _args: MountArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata mount: not implemented yet")
}

/// Runs `strata unmount`.
pub fn unmount(_root: Option<PathBuf>, _args: UnmountArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata unmount: not implemented yet")
}
