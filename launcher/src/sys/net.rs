//! Network interfaces.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sets IFF_UP on interface `name` through the socket `sock` (SIOCGIFFLAGS then
/// SIOCSIFFLAGS). Exists because neither nix nor rustix wraps these ioctls. Names
/// longer than IFNAMSIZ - 1 bytes are refused (EINVAL).
pub fn interface_up(sock: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    // SAFETY: ifreq is plain old data (integers, arrays and a union of them); all
    // zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() || name.as_bytes().contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (i, b) in name.bytes().enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    // SAFETY: `sock` is open for the borrow; SIOCGIFFLAGS reads the NUL-terminated name
    // from and writes the flags into the `ifreq` we own, through a valid pointer.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("SIOCGIFFLAGS {name}: {e}"),
        ));
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so `ifru_flags` is the union's initialized member.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as for SIOCGIFFLAGS; SIOCSIFFLAGS only reads the `ifreq`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
