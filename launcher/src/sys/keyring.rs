//! Kernel keyrings.

use std::ffi::CString;
use std::io;

/// `KEYCTL_JOIN_SESSION_KEYRING` from `linux/keyctl.h`.
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Makes the calling process join a new session keyring named `name` (its own, so a
/// container does not share its caller's keys). Exists because neither nix nor rustix
/// wraps keyctl(2). A name holding a NUL byte is refused (EINVAL).
pub fn join_new_session_keyring(name: &str) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, name) reads the NUL-terminated string
    // `name`, which lives across the call, and takes no other pointer; the unused
    // variadic arguments are not read for this operation.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
