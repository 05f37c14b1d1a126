//! `strata exec`: another process in a running container, through the runtime's
//! `join` (the OCI `exec`'s core): the container's cgroup and namespaces, its
//! environment with `-e` on top, its working directory or `-w`, its user or `-u`
//! (looked up in the container's `/etc/passwd`), the default capability set and
//! no_new_privs as `strata run` gives them; with `-t`, a pty relayed to the caller.
//! Returns the process's exit status (128+N on signal N).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::unistd::Pid;

use crate::runtime::caps::CapSets;
use crate::runtime::credentials::ProcessPlan;
use crate::runtime::join::{self, JoinSpec};
use crate::runtime::spec::{UserSpec, merge_env, resolve_user};
use crate::runtime::{init, pty, reap};

/// What to run.
pub struct ExecOptions<'a> {
    /// Command and arguments.
    pub argv: &'a [String],
    /// `-e` entries (`K=V`), over the container's environment.
    pub env: &'a [String],
    /// `-w`.
    pub workdir: Option<&'a str>,
    /// `-u`.
    pub user: Option<&'a str>,
    /// `-t`: a pty.
    pub tty: bool,
    /// `-i`: stdin passed on (else /dev/null).
    pub interactive: bool,
}

/// Runs `o` in container `c`; its exit status.
pub fn exec(c: &store::Container, o: &ExecOptions<'_>) -> Result<i32> {
    if o.argv.is_empty() {
        bail!("exec: no command");
    }
    let st = super::running_state(c)?;
    let root = PathBuf::from(format!("/proc/{}/root", st.pid));
    let user = match o.user.or(st.user.as_deref()) {
        Some(u) => resolve_user(u, &root)?,
        None => UserSpec::default(),
    };
    let env = merge_env(&[&st.env, o.env]);
    let cwd = o
        .workdir
        .or(Some(st.cwd.as_str()).filter(|c| !c.is_empty()))
        .unwrap_or("/");
    if !cwd.starts_with('/') {
        bail!("invalid --workdir {cwd:?}: must be an absolute path");
    }
    if !o.interactive {
        init::redirect_stdin_null()?;
    }
    let console = if o.tty {
        Some(pty::ConsoleSocket::new()?)
    } else {
        None
    };
    let caps = CapSets::default();
    // The helper exits after forking the process: make it ours to reap.
    nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    let mask = reap::block_forwarded()?;
    let (launcher_end, container_end) = match console {
        Some(c) => (Some(c.launcher), Some(c.container)),
        None => (None, None),
    };
    let pid = join::spawn(JoinSpec {
        init_pid: st.pid,
        cgroup_paths: &st.cgroup_paths,
        plan: ProcessPlan {
            argv: o.argv,
            env: &env,
            cwd: Path::new(cwd),
            user,
            additional_gids: &[],
            rootless: st.rootless,
            caps: &caps,
            no_new_privs: true,
            seccomp: None,
        },
        umask: None,
        rlimits: &[],
        console: container_end,
        preserve_fds: None,
    })?;
    let relay = match launcher_end {
        Some(sock) => pty::receive_master(&sock)?.map(|m| relay_pty(m, o.interactive)),
        None => None,
    };
    let raw = relay.as_ref().map(|_| pty::raw_stdin());
    let code = reap::wait(Pid::from_raw(pid), &mask);
    drop(raw);
    if let Some(out) = relay {
        // The pty's output ends (EIO) once the process and its children are gone.
        let _ = out.join();
    }
    code
}

/// Copies the pty `master`'s output to stdout (the returned thread, ending with it)
/// and, when `interactive`, stdin to the pty (a thread left to end with the process).
fn relay_pty(master: OwnedFd, interactive: bool) -> std::thread::JoinHandle<()> {
    pty::copy_winsize(std::io::stdin().as_fd(), master.as_fd());
    let master = std::fs::File::from(master);
    if interactive && let Ok(mut to_pty) = master.try_clone() {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_pty);
        });
    }
    std::thread::spawn(move || {
        let mut from = master;
        let mut out = std::io::stdout().lock();
        let _ = std::io::copy(&mut from, &mut out);
        let _ = std::io::Write::flush(&mut out);
    })
}
