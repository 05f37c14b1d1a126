//! Hooks: programs run at points of a container's life with its state (JSON) on
//! stdin, each with an optional timeout. An OCI `create` asks for them: its runtime
//! runs `createRuntime` (and the deprecated `prestart`) once the namespaces exist and
//! before pivot_root, the init runs `createContainer` before pivot_root and
//! `startContainer` just before exec, in the container's namespaces.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// One hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Absolute path of the program.
    pub path: PathBuf,
    /// Its argv (argv[0] included).
    pub args: Vec<String>,
    /// Its environment (`K=V`).
    pub env: Vec<String>,
    /// Seconds it may run.
    pub timeout: Option<u64>,
}

/// The hooks run while a container is created and started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreationHooks {
    /// Run by the runtime, in its namespaces, before pivot_root (`prestart` first).
    pub create_runtime: Vec<Hook>,
    /// Run by the init, in the container's namespaces, before pivot_root.
    pub create_container: Vec<Hook>,
    /// Run by the init, in the container, after `start` and before exec.
    pub start_container: Vec<Hook>,
    /// The state given on stdin (its `pid` is filled in when the hooks run).
    pub state: serde_json::Value,
}

impl CreationHooks {
    /// The state with `pid` and `status` set.
    pub fn state_for(&self, pid: i32, status: &str) -> serde_json::Value {
        let mut s = self.state.clone();
        s["pid"] = pid.into();
        s["status"] = status.into();
        s
    }
}

/// Runs `hooks` in order with `state` on stdin; stops at the first failure.
pub fn run(hooks: &[Hook], state: &serde_json::Value) -> Result<()> {
    for h in hooks {
        run_one(h, state).with_context(|| format!("hook {}", h.path.display()))?;
    }
    Ok(())
}

fn run_one(h: &Hook, state: &serde_json::Value) -> Result<()> {
    let mut cmd = Command::new(&h.path);
    if let Some(arg0) = h.args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
    }
    cmd.args(h.args.iter().skip(1))
        .env_clear()
        .envs(h.env.iter().filter_map(|e| e.split_once('=')))
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().context("starting it")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let deadline = h.timeout.map(|t| Instant::now() + Duration::from_secs(t));
    loop {
        if let Some(status) = child.try_wait().context("waiting for it")? {
            if !status.success() {
                bail!("it failed ({status})");
            }
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "it ran past its timeout of {}s",
                h.timeout.unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
