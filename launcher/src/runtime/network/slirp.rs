//! slirp4netns for a container's network namespace: started in the foreground as the
//! launcher's child, ready when it writes to its ready fd; published ports added
//! through its API socket. The host's loopback is 10.0.2.2, its DNS forwarder 10.0.2.3.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::ports::PortMapping;
use super::{HelperPlan, Running};

/// The address of the host's loopback in a slirp4netns network.
pub const HOST_LOOPBACK: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// slirp4netns' DNS forwarder.
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

/// How long slirp4netns may take to configure the namespace.
const READY_TIMEOUT_MS: u16 = 10_000;

/// Runs slirp4netns for `netns` and waits until it has configured it, then publishes
/// the plan's ports.
pub fn start(plan: &HelperPlan, netns: &OwnedFd, userns: Option<&OwnedFd>) -> Result<Running> {
    let program = super::find_program("slirp4netns")
        .context("--network slirp4netns: slirp4netns is not installed")?;
    let log = plan.runtime_dir.join("slirp4netns.log");
    let sock = std::env::temp_dir().join(format!("strata-slirp-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let (ready_r, ready_w) = nix::unistd::pipe().context("creating slirp4netns' ready pipe")?;
    let netns_path = super::inherited_path(netns)?;
    let userns_path = userns.map(super::inherited_path).transpose()?;
    let stderr =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = std::process::Command::new(&program);
    cmd.args(["--configure", "--mtu=65520"])
        .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .arg(format!("--api-socket={}", sock.display()))
        .arg("--netns-type=path");
    if let Some(u) = &userns_path {
        cmd.arg(format!("--userns-path={u}"));
    }
    let mut child = cmd
        .arg(&netns_path)
        .arg("tap0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("running {}", program.display()))?;
    drop(ready_w);
    let pid = child.id() as i32;
    let running = super::super::procfs::start_time(pid).map(|start| Running { pid, start });
    let r = (|| -> Result<Running> {
        if !wait_ready(&ready_r) {
            bail!("slirp4netns: {}", super::helper_message(&log));
        }
        let running = running.context("slirp4netns exited after starting")?;
        for p in &plan.ports {
            add_hostfwd(&sock, p)?;
        }
        Ok(running)
    })();
    let _ = std::fs::remove_file(&sock);
    if r.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    r
}

/// Whether slirp4netns wrote its ready byte in time.
fn wait_ready(fd: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    if !matches!(poll(&mut fds, PollTimeout::from(READY_TIMEOUT_MS)), Ok(n) if n > 0) {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(nix::unistd::read(fd, &mut b), Ok(1) if b[0] == b'1')
}

/// Publishes `p` through slirp4netns' API (`add_hostfwd`).
fn add_hostfwd(sock: &Path, p: &PortMapping) -> Result<()> {
    let host_addr = p
        .host_ip
        .map(|a| a.to_string())
        .unwrap_or_else(|| "0.0.0.0".to_string());
    let req = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": p.proto.as_str(),
            "host_addr": host_addr,
            "host_port": p.host_port,
            "guest_port": p.container_port,
        }
    });
    let mut s = std::os::unix::net::UnixStream::connect(sock)
        .with_context(|| format!("connecting to slirp4netns' API at {}", sock.display()))?;
    s.write_all(req.to_string().as_bytes())
        .context("writing to slirp4netns' API")?;
    s.shutdown(std::net::Shutdown::Write)
        .context("writing to slirp4netns' API")?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .context("reading slirp4netns' API answer")?;
    let answer: serde_json::Value = serde_json::from_str(&line)
        .with_context(|| format!("slirp4netns' API answered {line:?}"))?;
    if let Some(err) = answer.get("error") {
        let desc = err.get("desc").and_then(|d| d.as_str()).unwrap_or("error");
        bail!("slirp4netns: publishing {p}: {desc}");
    }
    Ok(())
}
