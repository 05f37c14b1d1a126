//! Syscalls the tests issue directly (std lacks them or hides their errno).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `p` as a C string (test paths never hold NUL bytes).
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("test path without NUL")
}

/// 0 when `r` is non-negative, else the current errno.
pub fn errno(r: i64) -> i32 {
    if r >= 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

/// The errno of an io::Result (0 for Ok).
pub fn errno_of<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Value of xattr `name` on `p` (not following symlinks), or the errno.
pub fn get_xattr(p: &Path, name: &str) -> Result<Vec<u8>, i32> {
    let (cp, cn) = (cpath(p), CString::new(name).expect("xattr name"));
    let mut v = vec![0u8; 64 * 1024];
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    if n < 0 {
        return Err(errno(-1));
    }
    v.truncate(n as usize);
    Ok(v)
}

/// Every xattr name of `p` (not following symlinks), or the errno.
pub fn list_xattrs(p: &Path) -> Result<Vec<Vec<u8>>, i32> {
    let cp = cpath(p);
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid C string and buffer.
    let n = unsafe { libc::llistxattr(cp.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(errno(-1));
    }
    buf.truncate(n as usize);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The `user.*` xattrs of `p` as sorted `name=value` strings (errors as a single entry).
pub fn user_xattrs(p: &Path) -> Vec<String> {
    let names = match list_xattrs(p) {
        Ok(n) => n,
        Err(e) => return vec![format!("listxattr errno {e}")],
    };
    let mut out: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with(b"user."))
        .map(|n| {
            let name = String::from_utf8_lossy(n).into_owned();
            match get_xattr(p, &name) {
                Ok(v) => format!("{name}={}", String::from_utf8_lossy(&v)),
                Err(e) => format!("{name}: errno {e}"),
            }
        })
        .collect();
    out.sort();
    out
}
