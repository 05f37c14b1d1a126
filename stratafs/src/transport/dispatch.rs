//! Decodes one request and runs its handler (`fuse::ops`). The opcode's own structure
//! (`in_args[0]`) comes apart from the rest of the arguments (names, data): a ring
//! entry carries it in the header's `op_in`, and `device` splits it off what it read.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileHandle, INodeNo, OpenFlags, RenameFlags, TimeOrNow, WriteFlags};

use super::abi::{self, InHeader, read};
use super::answer::{Answer, Outcome};
use crate::fuse::reply::{Reply, Who};
use crate::fuse::{OverlayFs, SetAttr};

/// Who may use the mount besides what the kernel already checks (fuser's session
/// ACL, kept the same on both transports).
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// Only this uid's requests (and the kernel's own) are served.
    pub owner_only: Option<u32>,
}

/// The first NUL-terminated name in `b`, and what follows it.
fn name(b: &[u8]) -> Option<(&OsStr, &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((OsStr::from_bytes(&b[..end]), &b[end + 1..]))
}

fn time(sec: u64, nsec: u32) -> SystemTime {
    let sec = sec as i64;
    let nsec = Duration::from_nanos(u64::from(nsec.min(999_999_999)));
    if sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(sec as u64) + nsec
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + nsec
    }
}

fn set_time(valid: u32, set: u32, now: u32, sec: u64, nsec: u32) -> Option<TimeOrNow> {
    if valid & now != 0 {
        Some(TimeOrNow::Now)
    } else if valid & set != 0 {
        Some(TimeOrNow::SpecificTime(time(sec, nsec)))
    } else {
        None
    }
}

/// Requests the kernel sends without a caller's ids, which fuser lets through its ACL.
fn kernel_initiated(opcode: u32) -> bool {
    matches!(
        opcode,
        abi::READ
            | abi::READDIR
            | abi::READDIRPLUS
            | abi::WRITE
            | abi::FSYNC
            | abi::FSYNCDIR
            | abi::RELEASE
            | abi::RELEASEDIR
            | abi::DESTROY
    )
}

/// Runs the request `h` (`op_in`, then `input` from the payload) and writes its reply
/// into `out`, saying in `done` how it went.
pub fn dispatch(
    fs: &OverlayFs,
    access: Access,
    h: &InHeader,
    op_in: &[u8],
    input: &[u8],
    out: &mut [u8],
    done: &mut Outcome,
) {
    // Listings fill at most the size asked for (`op_in` past an opcode's own
    // structure holds stale bytes: read only what the opcode sent).
    let limit = match h.opcode {
        abi::READDIR | abi::READDIRPLUS => {
            read::<abi::ReadIn>(op_in).map_or(0, |r| r.size as usize)
        }
        _ => out.len(),
    };
    let a = Answer::new(out, limit, done);
    if access
        .owner_only
        .is_some_and(|uid| h.uid != uid && !kernel_initiated(h.opcode))
    {
        return a.error(Errno::EACCES);
    }
    if run(fs, h, op_in, input, a).is_none() {
        // Too short for its opcode: no handler ran, `done` still says EIO.
        log::warn!("malformed request (opcode {})", h.opcode);
    }
}

/// Decodes and runs; `None` when the request is too short for its opcode.
fn run(fs: &OverlayFs, h: &InHeader, op_in: &[u8], input: &[u8], a: Answer<'_>) -> Option<()> {
    let ino = INodeNo(h.nodeid);
    let who = Who {
        uid: h.uid,
        gid: h.gid,
        pid: h.pid,
    };
    match h.opcode {
        abi::LOOKUP => fs.lookup(&who, ino, name(input)?.0, a),
        abi::GETATTR => {
            let g = read::<abi::GetattrIn>(op_in)?;
            let fh = (g.getattr_flags & abi::GETATTR_FH != 0).then_some(FileHandle(g.fh));
            fs.getattr(ino, fh, a);
        }
        abi::SETATTR => {
            let s = read::<abi::SetattrIn>(op_in)?;
            let v = s.valid;
            let change = SetAttr {
                mode: (v & abi::FATTR_MODE != 0).then_some(s.mode),
                uid: (v & abi::FATTR_UID != 0).then_some(s.uid),
                gid: (v & abi::FATTR_GID != 0).then_some(s.gid),
                size: (v & abi::FATTR_SIZE != 0).then_some(s.size),
                atime: set_time(
                    v,
                    abi::FATTR_ATIME,
                    abi::FATTR_ATIME_NOW,
                    s.atime,
                    s.atimensec,
                ),
                mtime: set_time(
                    v,
                    abi::FATTR_MTIME,
                    abi::FATTR_MTIME_NOW,
                    s.mtime,
                    s.mtimensec,
                ),
                fh: (v & abi::FATTR_FH != 0).then_some(FileHandle(s.fh)),
            };
            fs.setattr(&who, ino, change, a);
        }
        abi::READLINK => fs.readlink(ino, a),
        abi::SYMLINK => {
            let (link, rest) = name(input)?;
            let target = Path::new(name(rest)?.0);
            fs.symlink(&who, ino, link, target, a);
        }
        abi::MKNOD => {
            let m = read::<abi::MknodIn>(op_in)?;
            fs.mknod(&who, ino, name(input)?.0, m.mode, m.umask, m.rdev, a);
        }
        abi::MKDIR => {
            let m = read::<abi::MkdirIn>(op_in)?;
            fs.mkdir(&who, ino, name(input)?.0, m.mode, m.umask, a);
        }
        abi::UNLINK => fs.unlink(ino, name(input)?.0, a),
        abi::RMDIR => fs.rmdir(ino, name(input)?.0, a),
        abi::RENAME | abi::RENAME2 => {
            let newdir = read::<abi::RenameIn>(op_in)?.newdir;
            let flags = match h.opcode {
                abi::RENAME2 => read::<abi::Rename2In>(op_in)?.flags,
                _ => 0,
            };
            let (old, rest) = name(input)?;
            let new = name(rest)?.0;
            let flags = RenameFlags::from_bits_retain(flags);
            fs.rename(ino, old, INodeNo(newdir), new, flags, a);
        }
        abi::LINK => {
            let l = read::<abi::LinkIn>(op_in)?;
            fs.link(INodeNo(l.oldnodeid), ino, name(input)?.0, a);
        }
        abi::OPEN => {
            let o = read::<abi::OpenIn>(op_in)?;
            fs.open(ino, OpenFlags(o.flags as i32), a);
        }
        abi::READ => {
            let r = read::<abi::ReadIn>(op_in)?;
            fs.read(&who, ino, FileHandle(r.fh), r.offset, r.size, a);
        }
        abi::WRITE => {
            let w = read::<abi::WriteIn>(op_in)?;
            let data = input.get(..w.size as usize)?;
            let wf = WriteFlags::from_bits_retain(w.write_flags);
            fs.write(&who, ino, FileHandle(w.fh), w.offset, data, wf, a);
        }
        abi::STATFS => fs.statfs(a),
        abi::RELEASE => fs.release(ino, FileHandle(read::<abi::ReleaseIn>(op_in)?.fh), a),
        abi::FSYNC => {
            let f = read::<abi::FsyncIn>(op_in)?;
            let datasync = f.fsync_flags & abi::FSYNC_FDATASYNC != 0;
            fs.fsync(ino, FileHandle(f.fh), datasync, a);
        }
        abi::SETXATTR => {
            let s = read::<abi::SetxattrIn>(op_in)?;
            let (n, rest) = name(input)?;
            let value = rest.get(..s.size as usize)?;
            fs.setxattr(ino, n, value, s.flags as i32, a);
        }
        abi::GETXATTR => {
            let g = read::<abi::GetxattrIn>(op_in)?;
            fs.getxattr(ino, name(input)?.0, g.size, a);
        }
        abi::LISTXATTR => fs.listxattr(ino, read::<abi::GetxattrIn>(op_in)?.size, a),
        abi::REMOVEXATTR => fs.removexattr(ino, name(input)?.0, a),
        abi::FLUSH => fs.flush(a),
        abi::OPENDIR => fs.opendir(ino, a),
        abi::READDIR => {
            let r = read::<abi::ReadIn>(op_in)?;
            fs.readdir(ino, FileHandle(r.fh), r.offset, a);
        }
        abi::READDIRPLUS => {
            let r = read::<abi::ReadIn>(op_in)?;
            fs.readdirplus(&who, ino, FileHandle(r.fh), r.offset, a);
        }
        abi::RELEASEDIR => fs.releasedir(FileHandle(read::<abi::ReleaseIn>(op_in)?.fh), a),
        abi::FSYNCDIR => fs.fsyncdir(a),
        abi::ACCESS => fs.access(a),
        abi::CREATE => {
            let c = read::<abi::CreateIn>(op_in)?;
            let n = name(input)?.0;
            fs.create(&who, ino, n, c.mode, c.umask, c.flags as i32, a);
        }
        abi::TMPFILE => {
            let c = read::<abi::CreateIn>(op_in)?;
            fs.tmpfile(&who, ino, c.mode, c.umask, c.flags as i32, a);
        }
        abi::FALLOCATE => {
            let f = read::<abi::FallocateIn>(op_in)?;
            let fh = FileHandle(f.fh);
            fs.fallocate(&who, ino, fh, f.offset, f.length, f.mode as i32, a);
        }
        abi::LSEEK => {
            let l = read::<abi::LseekIn>(op_in)?;
            fs.lseek(ino, FileHandle(l.fh), l.offset as i64, l.whence as i32, a);
        }
        abi::DESTROY => crate::fuse::reply::EmptyReply::ok(a),
        // Locks, ioctl, poll, copy_file_range, statx...: not implemented,
        // as on /dev/fuse (the kernel then falls back, or stops asking).
        _ => a.error(Errno::ENOSYS),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_nul() {
        let (a, rest) = name(b"old\0new\0").unwrap_or_default();
        assert_eq!(a, "old");
        assert_eq!(name(rest).map(|n| n.0), Some(OsStr::new("new")));
        assert!(name(b"unterminated").is_none());
    }

    #[test]
    fn times_before_the_epoch_decode() {
        assert_eq!(time(5, 7), UNIX_EPOCH + Duration::new(5, 7));
        let t = time((-2i64) as u64, 999_999_750);
        assert_eq!(
            UNIX_EPOCH.duration_since(t).ok(),
            Some(Duration::new(1, 250))
        );
    }
}
