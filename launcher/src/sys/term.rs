//! Terminals: window sizes.

use std::os::fd::{AsRawFd, BorrowedFd};

/// Copies the window size of terminal `from` to terminal `to` (nothing when `from` is
/// not a terminal). Exists because neither nix nor rustix (with the features the
/// workspace enables) wraps TIOCGWINSZ/TIOCSWINSZ safely.
pub fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: both fds are open for the borrows' lifetime; TIOCGWINSZ writes one
    // `winsize` through the pointer, which points to a live, writable `winsize`.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0 {
        // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which points to
        // the initialized `ws`.
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}
