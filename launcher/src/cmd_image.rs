//! `strata image ...`, `strata diff`, `strata commit`, `strata export`: the store's commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `strata image` subcommands.
#[derive(Subcommand)]
pub enum ImageCommand {
    /// List images.
    Ls,
}

/// Arguments of `strata diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// Container name or id.
    pub container: String,
}

/// Arguments of `strata commit`.
#[derive(Args)]
pub struct CommitArgs {
    /// Container name or id.
    pub container: String,
    /// NAME:TAG of the new image.
    pub reference: String,
}

/// Arguments of `strata export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Container name or id.
    pub container: String,
    /// Output tar file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

/// Runs a `strata image` subcommand.
pub fn image(_root: Option<PathBuf>, _cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata image: not implemented yet")
}

/// Runs `strata diff`.
pub fn diff(_root: Option<PathBuf>, _args: DiffArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata diff: not implemented yet")
}

/// Runs `strata commit`.
pub fn commit(_root: Option<PathBuf>, _args: CommitArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata commit: not implemented yet")
}

/// Runs `strata export`.
pub fn export(_root: Option<PathBuf>, _args: ExportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("strata export: not implemented yet")
}
