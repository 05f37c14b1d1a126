//! `-t`: a pty for the container, allocated the way runc and crun do it: the container
//! opens it in its own devpts instance after pivot_root (so `tty` names `/dev/pts/N`
//! inside, and `/dev/console` is that slave) and passes the master to the launcher over
//! a socket pair (`SCM_RIGHTS`). The launcher puts its own terminal in raw mode, relays
//! bytes both ways and passes window-size changes on.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
};
use nix::sys::termios::{self, SetArg, Termios};

use super::mounts::{do_mount, ensure_file};
use super::syscall::Syscall;

/// The socket pair the container sends its pty master over.
pub struct ConsoleSocket {
    /// Kept by the launcher.
    pub launcher: OwnedFd,
    /// Inherited by the setup process and the container (close-on-exec).
    pub container: OwnedFd,
}

impl ConsoleSocket {
    /// A new close-on-exec socket pair.
    pub fn new() -> Result<ConsoleSocket> {
        let (launcher, container) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("creating the console socket pair")?;
        Ok(ConsoleSocket {
            launcher,
            container,
        })
    }
}

/// In the container, after pivot_root: opens a pty in the container's devpts, sized like
/// the launcher's terminal (still the container's stdin), binds its slave at
/// `/dev/console`, sends the master over `socket` and returns the slave.
pub fn open_in_container(sys: &dyn Syscall, socket: BorrowedFd<'_>) -> Result<OwnedFd> {
    let (slave, name) = open_and_send(socket)?;
    let console = Path::new("/dev/console");
    ensure_file(console)?;
    do_mount(
        sys,
        Some(Path::new(&name)),
        None,
        console,
        MsFlags::MS_BIND,
        None,
    )?;
    Ok(slave)
}

/// Opens a pty in the devpts this process sees, sized like its stdin's terminal,
/// sends the master over `socket` and returns the slave and its name (`exec -t` into
/// a running container uses this alone: its `/dev/console` is the init's).
pub fn open_and_send(socket: BorrowedFd<'_>) -> Result<(OwnedFd, String)> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("opening /dev/ptmx in the container")?;
    nix::pty::unlockpt(&master).context("unlocking the container's pty")?;
    let name = nix::pty::ptsname_r(&master).context("naming the container's pty")?;
    let slave = nix::fcntl::open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("opening {name}"))?;
    copy_winsize(std::io::stdin().as_fd(), master.as_fd());
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(b"m")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context("sending the pty master to the launcher")?;
    Ok((slave, name))
}

/// In the launcher: receives the container's pty master; `None` when the container
/// exited before sending one (its error is reported by its exit status).
pub fn receive_master(socket: &OwnedFd) -> Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let (bytes, fds) = crate::sys::fd::recv_with_fds(socket.as_fd(), &mut byte)
        .context("receiving the pty master from the container")?;
    if bytes == 0 {
        return Ok(None);
    }
    // Unexpected extras are closed when `fds` is dropped.
    match fds.into_iter().next() {
        Some(master) => Ok(Some(master)),
        None => bail!("the container sent no pty master"),
    }
}

/// Copies the window size of terminal `from` to terminal `to` (nothing when `from` is
/// not a terminal).
pub fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    crate::sys::term::copy_winsize(from, to)
}

/// The launcher's terminal in raw mode; restored on drop.
pub struct RawGuard {
    saved: Option<Termios>,
}

/// Puts stdin in raw mode if it is a terminal.
pub fn raw_stdin() -> RawGuard {
    let stdin = std::io::stdin();
    let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
        return RawGuard { saved: None };
    };
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
    RawGuard { saved: Some(saved) }
}

impl Drop for RawGuard {
    fn drop(&mut self) {
        if let Some(s) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, s);
        }
    }
}

/// Makes the terminal on `fd` the controlling tty of this (session leader) process:
/// the container's setup (`-t`) and the init's command (`--init -t`) both take it.
pub(super) fn take_controlling_tty(fd: BorrowedFd<'_>) -> Result<()> {
    // Argument 0: never steals a terminal that is another session's.
    rustix::process::ioctl_tiocsctty(fd)
        .map_err(std::io::Error::from)
        .context("TIOCSCTTY on the pty")
}
