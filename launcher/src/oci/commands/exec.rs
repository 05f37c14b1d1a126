//! `exec [OPTIONS] ID [COMMAND...]`: runs another process in a running container, as
//! runc does: the bundle's `process` is the base (or `--process FILE` replaces it,
//! checked as config.json's is), the command, `--env`, `--cwd`, `--user`,
//! `--additional-gids`, `--cap`, `--no-new-privs` and `--tty` (with
//! `--console-socket`) change it. Without `--detach` it waits and exits with the
//! process's status.

use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::unistd::Pid;

use crate::oci::config::{self, Placement};
use crate::oci::state::{StateDir, Status};
use crate::oci::{console, names};
use crate::runtime::credentials::ProcessPlan;
use crate::runtime::join::{self, JoinSpec};
use crate::runtime::spec::UserSpec;

/// Runs `a`'s process in its container; the exit status (0 with `--detach`).
pub fn exec(root: &Path, a: &liboci_cli::Exec) -> Result<u8> {
    for (set, name) in [
        (a.process_label.is_some(), "--process-label"),
        (a.apparmor.is_some(), "--apparmor"),
        (a.cgroup.is_some(), "--cgroup"),
    ] {
        if set {
            bail!("{name} is not supported by strata-runtime yet");
        }
    }
    let dir = StateDir::new(root, &a.container_id)?;
    let record = dir.load()?;
    match record.status() {
        Status::Running => {}
        Status::Paused if a.ignore_paused => {}
        other => bail!("cannot exec in container {}: it is {other}", a.container_id),
    }
    let process = a
        .process
        .as_deref()
        .map(|p| -> Result<serde_json::Value> {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
        })
        .transpose()?;
    let from_file = process.is_some();
    // The base: the file's process, else the bundle's.
    let mut process = match process {
        Some(p) => p,
        None => {
            let path = record.bundle.join("config.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let raw: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            raw.get("process").cloned().unwrap_or_default()
        }
    };
    let tty = a.tty
        || (from_file
            && process
                .get("terminal")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false));
    if tty != a.console_socket.is_some() {
        bail!("exec: a terminal (--tty) and --console-socket go together");
    }
    if let Some(obj) = process.as_object_mut() {
        // The terminal is this command's, not the container's.
        obj.insert("terminal".into(), tty.into());
    }
    let at = Placement {
        id: a.container_id.clone(),
        state_dir: dir.dir.clone(),
        exec_fifo: dir.exec_fifo(),
        console: tty,
        new_keyring: false,
        preserve_fds: u32::try_from(a.preserve_fds).unwrap_or(0),
    };
    let base = config::load_with(&record.bundle, &at, Some(process))?;
    let s = base.spec;
    let argv = if a.command.is_empty() || from_file {
        s.argv.clone()
    } else {
        a.command.clone()
    };
    if argv.is_empty() {
        bail!("exec: no command");
    }
    let mut env = s.env.clone();
    for (k, v) in &a.env {
        env.retain(|e| e.split('=').next() != Some(k.as_str()));
        env.push(format!("{k}={v}"));
    }
    let cwd = a
        .cwd
        .as_ref()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or(s.cwd.clone());
    let (base_uid, base_gid) = s
        .user
        .as_deref()
        .and_then(|u| u.split_once(':'))
        .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)))
        .unwrap_or((0, 0));
    let user = match a.user {
        Some((uid, gid)) => UserSpec {
            uid,
            gid: gid.unwrap_or(uid),
        },
        None => UserSpec {
            uid: base_uid,
            gid: base_gid,
        },
    };
    let mut caps = s.caps.clone();
    for c in &a.cap {
        let n = names::capability(c).with_context(|| format!("--cap {c}"))?;
        for set in [&mut caps.bounding, &mut caps.effective, &mut caps.permitted] {
            if !set.contains(&n) {
                set.push(n);
            }
        }
    }
    if user.uid != 0 && !(caps.effective.is_empty() && caps.permitted.is_empty()) {
        // As create refuses them: a non-root user keeps no capabilities.
        caps.effective.clear();
        caps.permitted.clear();
    }
    let mut gids = s.additional_gids.clone();
    gids.extend(&a.additional_gids);
    let console = a
        .console_socket
        .as_deref()
        .map(console::connect)
        .transpose()?;
    let wait = !a.detach;
    let mut mask = nix::sys::signal::SigSet::empty();
    if wait {
        // The helper exits after forking the process: make it ours to reap.
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
        mask = crate::runtime::reap::block_forwarded()?;
    }
    let pid = join::spawn(JoinSpec {
        init_pid: record.pid,
        cgroup_paths: &record.cgroup_paths,
        plan: ProcessPlan {
            argv: &argv,
            env: &env,
            cwd: Path::new(&cwd),
            user,
            additional_gids: &gids,
            rootless: s.idmap.is_some(),
            caps: &caps,
            no_new_privs: s.no_new_privs || a.no_new_privs,
            seccomp: s.seccomp.as_ref(),
        },
        umask: s.umask,
        rlimits: &s.rlimits,
        console,
        preserve_fds: s.preserve_fds,
    })?;
    if let Some(p) = &a.pid_file {
        std::fs::write(p, pid.to_string())
            .with_context(|| format!("writing the pid file {}", p.display()))?;
    }
    if !wait {
        return Ok(0);
    }
    let code = crate::runtime::reap::wait(Pid::from_raw(pid), &mask)?;
    Ok(u8::try_from(code).unwrap_or(255))
}
