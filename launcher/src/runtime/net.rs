//! `--network none`: the new network namespace's loopback brought up.

use anyhow::{Context, Result};

/// Sets IFF_UP on `lo` in the current network namespace.
pub fn loopback_up() -> Result<()> {
    use std::os::fd::AsFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("creating a socket to configure lo")?;
    crate::sys::net::interface_up(sock.as_fd(), "lo").context("bringing lo up")?;
    Ok(())
}
