//! `-t`: a pty for the container. The launcher keeps the master, puts its own terminal
//! in raw mode, relays bytes both ways and passes window-size changes on.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::sys::termios::{self, SetArg, Termios};

/// A pty pair; the slave goes to the container.
pub struct Pty {
    /// Launcher side.
    pub master: OwnedFd,
    /// Container side.
    pub slave: OwnedFd,
    /// The slave's path (bound as `/dev/console`).
    pub slave_path: PathBuf,
}

/// Opens a pty, sized like the launcher's terminal when it has one.
pub fn open() -> Result<Pty> {
    let p = nix::pty::openpty(None, None).context("openpty")?;
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", p.slave.as_raw_fd()))
        .context("finding the pty slave's path")?;
    copy_winsize(&p.master);
    Ok(Pty {
        master: p.master,
        slave: p.slave,
        slave_path,
    })
}

/// Copies the launcher terminal's window size to the pty (on start and SIGWINCH).
pub fn copy_winsize(master: &OwnedFd) {
    // SAFETY: winsize is plain data; TIOCGWINSZ/TIOCSWINSZ read/write it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
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
