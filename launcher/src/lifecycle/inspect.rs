//! `strata inspect`: a container as JSON (podman's field names where they exist):
//! id, name, image, creation time, command, state (status, running, pid, exit code,
//! start and finish times, the monitor's pid, an error), config, log path, rootfs dirs.

use anyhow::Result;
use serde_json::{Value, json};

use crate::runtime::clock::rfc3339;
use crate::runtime::state::{self, Status};

/// The status word `ps` and `inspect` show for the container in `dir`.
pub fn status_word(st: Option<&state::State>) -> &'static str {
    match st.map(|s| (state::status(s), s.detached)) {
        None | Some((Status::Created, _)) => "created",
        Some((Status::Running, _)) => "running",
        Some((Status::Exited(_), _)) => "exited",
        Some((Status::LauncherDied, true)) => "stopped (monitor died)",
        Some((Status::LauncherDied, false)) => "stopped (launcher died)",
    }
}

fn time(secs: Option<u64>) -> Value {
    match secs {
        Some(s) => Value::String(rfc3339(i64::try_from(s).unwrap_or(i64::MAX), 0)),
        None => Value::Null,
    }
}

/// The JSON document of container `c`.
pub fn inspect(c: &store::Container) -> Result<Value> {
    let st = state::load(&c.dir);
    let args = super::config::load(&c.dir).ok();
    let status = st.as_ref().map(state::status);
    let running = status == Some(Status::Running);
    let command = st.as_ref().map(|s| s.command.clone()).unwrap_or_default();
    Ok(json!({
        "Id": c.id,
        "Name": c.name,
        "Image": c.image_id,
        "ImageName": args.as_ref().map(|a| a.image.clone()),
        "Created": time(Some(c.created)),
        "Path": command.first(),
        "Args": command.get(1..).unwrap_or_default(),
        "State": {
            "Status": status_word(st.as_ref()),
            "Running": running,
            "Pid": st.as_ref().filter(|_| running).map(|s| s.pid).unwrap_or(0),
            "ExitCode": st.as_ref().and_then(|s| s.exit_code),
            "StartedAt": time(st.as_ref().and_then(|s| s.started_at)),
            "FinishedAt": time(st.as_ref().and_then(|s| s.finished_at)),
            "MonitorPid": st.as_ref().filter(|s| s.detached).map(|s| s.launcher_pid),
            "LauncherDied": status == Some(Status::LauncherDied),
            "Error": st.as_ref().and_then(|s| s.error.clone()),
        },
        "Config": {
            "Hostname": args
                .as_ref()
                .and_then(|a| a.hostname.clone())
                .unwrap_or_else(|| c.id.chars().take(12).collect()),
            "Env": st.as_ref().map(|s| s.env.clone()).unwrap_or_default(),
            "WorkingDir": st.as_ref().map(|s| s.cwd.clone()).unwrap_or_default(),
            "User": st.as_ref().and_then(|s| s.user.clone()),
            "Tty": args.as_ref().is_some_and(|a| a.tty),
            "Cmd": args.as_ref().map(|a| a.command.clone()).unwrap_or_default(),
        },
        "LogPath": super::logs::path(&c.dir),
        "CgroupPaths": st.as_ref().map(|s| s.cgroup_paths.clone()).unwrap_or_default(),
        "Rootless": st.as_ref().is_some_and(|s| s.rootless),
        "GraphDriver": {
            "UpperDir": c.upper,
            "WorkDir": c.work,
            "MergedDir": c.merged,
        },
    }))
}
