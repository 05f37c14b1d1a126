//! The exec fifo of a created (OCI) container, as runc keeps it: `create` makes it, the
//! container's init opens it for writing once set up and blocks there, `start` opens it
//! for reading, which lets the init write one byte and exec. Both sides are here.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

/// Makes the fifo at `path` (mode 0600: only root's `start` opens it).
pub fn make(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))
        .with_context(|| format!("making the exec fifo {}", path.display()))
}

/// The init's handle on the fifo, taken before pivot_root (the path is the host's):
/// an `O_PATH` descriptor, reopened for writing through `/proc/self/fd` to wait.
pub struct Pending(OwnedFd);

impl Pending {
    /// Opens `path` as an `O_PATH` descriptor (close-on-exec).
    pub fn open(path: &Path) -> Result<Pending> {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .with_context(|| format!("opening the exec fifo {}", path.display()))?;
        Ok(Pending(fd))
    }

    /// Blocks until `start` opens the fifo for reading, then writes the byte it waits
    /// for. Needs the container's `/proc` mounted.
    pub fn wait(self) -> Result<()> {
        let path = format!("/proc/self/fd/{}", self.0.as_raw_fd());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .context("opening the exec fifo for writing")?;
        f.write_all(b"0").context("writing to the exec fifo")
    }
}

/// `start`'s side: opens the fifo for reading and waits for the init's byte, giving up
/// when `alive` says the init is gone. Removes the fifo once read.
pub fn release(path: &Path, alive: impl Fn() -> bool) -> Result<()> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening the exec fifo {}", path.display()))?;
    let mut f = std::fs::File::from(fd);
    loop {
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(Duration::from_millis(100)).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {
                if !alive() {
                    bail!("the container's init exited before it was started");
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => return Err(e).context("polling the exec fifo"),
        }
        let mut byte = [0u8; 1];
        match f.read(&mut byte) {
            Ok(1) => break,
            Ok(_) => bail!("the container's init closed the exec fifo without starting"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e).context("reading the exec fifo"),
        }
    }
    // The container may have run and ended already, and its monitor removed the fifo.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing the exec fifo {}", path.display()))
        }
        _ => Ok(()),
    }
}
