//! The kernel's FUSE structures the transports read and write themselves
//! (`include/uapi/linux/fuse.h`, protocol 7.42+): fuser keeps its own private.

use std::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

// Opcodes served through the ring (the rest are answered ENOSYS, as fuser does).
pub const LOOKUP: u32 = 1;
pub const GETATTR: u32 = 3;
pub const SETATTR: u32 = 4;
pub const READLINK: u32 = 5;
pub const SYMLINK: u32 = 6;
pub const MKNOD: u32 = 8;
pub const MKDIR: u32 = 9;
pub const UNLINK: u32 = 10;
pub const RMDIR: u32 = 11;
pub const RENAME: u32 = 12;
pub const LINK: u32 = 13;
pub const OPEN: u32 = 14;
pub const READ: u32 = 15;
pub const WRITE: u32 = 16;
pub const STATFS: u32 = 17;
pub const RELEASE: u32 = 18;
pub const FSYNC: u32 = 20;
pub const SETXATTR: u32 = 21;
pub const GETXATTR: u32 = 22;
pub const LISTXATTR: u32 = 23;
pub const REMOVEXATTR: u32 = 24;
pub const FLUSH: u32 = 25;
pub const OPENDIR: u32 = 27;
pub const READDIR: u32 = 28;
pub const RELEASEDIR: u32 = 29;
pub const FSYNCDIR: u32 = 30;
pub const ACCESS: u32 = 34;
pub const CREATE: u32 = 35;
pub const DESTROY: u32 = 38;
pub const FALLOCATE: u32 = 43;
pub const READDIRPLUS: u32 = 44;
pub const RENAME2: u32 = 45;
pub const LSEEK: u32 = 46;
pub const TMPFILE: u32 = 51;
// One-way messages (no reply awaited), served on `/dev/fuse` alone.
pub const FORGET: u32 = 2;
pub const INTERRUPT: u32 = 36;
pub const NOTIFY_REPLY: u32 = 41;
pub const BATCH_FORGET: u32 = 42;

// SETATTR `valid` bits.
pub const FATTR_MODE: u32 = 1 << 0;
pub const FATTR_UID: u32 = 1 << 1;
pub const FATTR_GID: u32 = 1 << 2;
pub const FATTR_SIZE: u32 = 1 << 3;
pub const FATTR_ATIME: u32 = 1 << 4;
pub const FATTR_MTIME: u32 = 1 << 5;
pub const FATTR_FH: u32 = 1 << 6;
pub const FATTR_ATIME_NOW: u32 = 1 << 7;
pub const FATTR_MTIME_NOW: u32 = 1 << 8;

/// GETATTR names an open file handle.
pub const GETATTR_FH: u32 = 1;
/// FSYNC of data only.
pub const FSYNC_FDATASYNC: u32 = 1;

/// `fuse_uring_cmd` operations (the SQE's `cmd_op`).
pub const URING_CMD_REGISTER: u32 = 1;
pub const URING_CMD_COMMIT_AND_FETCH: u32 = 2;

/// The plain-old-data structures below, which any bytes may fill and whose bytes are
/// all initialized (zerocopy checks both at compile time: integers only, no padding).
pub trait Pod: FromBytes + IntoBytes + Immutable + Copy {}

impl<T: FromBytes + IntoBytes + Immutable + Copy> Pod for T {}

/// Reads a `T` from the start of `b` (unaligned); `None` when `b` is too short.
pub fn read<T: Pod>(b: &[u8]) -> Option<T> {
    T::read_from_prefix(b).ok().map(|(t, _)| t)
}

/// The bytes of `t`.
pub fn bytes<T: Pod>(t: &T) -> &[u8] {
    t.as_bytes()
}

macro_rules! pod {
    ($($(#[$m:meta])* $name:ident { $($f:ident: $t:ty),* $(,)? })*) => {$(
        $(#[$m])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
        pub struct $name { $(pub $f: $t),* }
    )*};
}

pod! {
    /// `fuse_in_header`: every request's first bytes.
    InHeader { len: u32, opcode: u32, unique: u64, nodeid: u64, uid: u32, gid: u32, pid: u32, total_extlen: u16, padding: u16 }
    /// `fuse_out_header`.
    OutHeader { len: u32, error: i32, unique: u64 }
    /// `fuse_uring_ent_in_out`: per-entry bookkeeping in the ring header.
    EntInOut { flags: u64, commit_id: u64, payload_sz: u32, padding: u32, reserved: u64 }
    /// `fuse_uring_cmd_req`: the SQE's command area for REGISTER and COMMIT_AND_FETCH.
    CmdReq { flags: u64, commit_id: u64, qid: u16, padding: [u8; 6] }
    /// `fuse_attr`.
    Attr {
        ino: u64, size: u64, blocks: u64, atime: u64, mtime: u64, ctime: u64,
        atimensec: u32, mtimensec: u32, ctimensec: u32, mode: u32, nlink: u32,
        uid: u32, gid: u32, rdev: u32, blksize: u32, flags: u32,
    }
    /// `fuse_entry_out`.
    EntryOut {
        nodeid: u64, generation: u64, entry_valid: u64, attr_valid: u64,
        entry_valid_nsec: u32, attr_valid_nsec: u32, attr: Attr,
    }
    /// `fuse_attr_out`.
    AttrOut { attr_valid: u64, attr_valid_nsec: u32, dummy: u32, attr: Attr }
    /// `fuse_open_out`.
    OpenOut { fh: u64, open_flags: u32, backing_id: i32 }
    /// `fuse_write_out`.
    WriteOut { size: u32, padding: u32 }
    /// `fuse_getxattr_out`.
    GetxattrOut { size: u32, padding: u32 }
    /// `fuse_lseek_out`.
    LseekOut { offset: u64 }
    /// `fuse_kstatfs` (as `fuse_statfs_out`).
    StatfsOut {
        blocks: u64, bfree: u64, bavail: u64, files: u64, ffree: u64,
        bsize: u32, namelen: u32, frsize: u32, padding: u32, spare: [u32; 6],
    }
    /// `fuse_dirent` without its name.
    Dirent { ino: u64, off: u64, namelen: u32, typ: u32 }
    /// `fuse_getattr_in`.
    GetattrIn { getattr_flags: u32, dummy: u32, fh: u64 }
    /// `fuse_setattr_in`.
    SetattrIn {
        valid: u32, padding: u32, fh: u64, size: u64, lock_owner: u64,
        atime: u64, mtime: u64, ctime: u64, atimensec: u32, mtimensec: u32,
        ctimensec: u32, mode: u32, unused4: u32, uid: u32, gid: u32, unused5: u32,
    }
    /// `fuse_mknod_in`.
    MknodIn { mode: u32, rdev: u32, umask: u32, padding: u32 }
    /// `fuse_mkdir_in`.
    MkdirIn { mode: u32, umask: u32 }
    /// `fuse_rename_in`.
    RenameIn { newdir: u64 }
    /// `fuse_rename2_in`.
    Rename2In { newdir: u64, flags: u32, padding: u32 }
    /// `fuse_link_in`.
    LinkIn { oldnodeid: u64 }
    /// `fuse_open_in`.
    OpenIn { flags: u32, open_flags: u32 }
    /// `fuse_read_in` (READ, READDIR, READDIRPLUS).
    ReadIn { fh: u64, offset: u64, size: u32, read_flags: u32, lock_owner: u64, flags: u32, padding: u32 }
    /// `fuse_write_in`.
    WriteIn { fh: u64, offset: u64, size: u32, write_flags: u32, lock_owner: u64, flags: u32, padding: u32 }
    /// `fuse_release_in` (RELEASE, RELEASEDIR).
    ReleaseIn { fh: u64, flags: u32, release_flags: u32, lock_owner: u64 }
    /// `fuse_fsync_in`.
    FsyncIn { fh: u64, fsync_flags: u32, padding: u32 }
    /// `fuse_setxattr_in` (the first two fields without FUSE_SETXATTR_EXT).
    SetxattrIn { size: u32, flags: u32 }
    /// `fuse_getxattr_in` (GETXATTR, LISTXATTR).
    GetxattrIn { size: u32, padding: u32 }
    /// `fuse_create_in`.
    CreateIn { flags: u32, mode: u32, umask: u32, open_flags: u32 }
    /// `fuse_fallocate_in`.
    FallocateIn { fh: u64, offset: u64, length: u64, mode: u32, padding: u32 }
    /// `fuse_lseek_in`.
    LseekIn { fh: u64, offset: u64, whence: u32, padding: u32 }
    /// `fuse_forget_in`.
    ForgetIn { nlookup: u64 }
    /// `fuse_batch_forget_in`, followed by `count` of `ForgetOne`.
    BatchForgetIn { count: u32, dummy: u32 }
    /// `fuse_forget_one`.
    ForgetOne { nodeid: u64, nlookup: u64 }
}

/// Bytes of the ring entry's header buffer: `in_out`, `op_in`, `EntInOut`.
pub const HEADER_IN_OUT: usize = 128;
pub const HEADER_OP_IN: usize = 128;
pub const HEADER_SIZE: usize = HEADER_IN_OUT + HEADER_OP_IN + size_of::<EntInOut>();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_kernel() {
        assert_eq!(size_of::<InHeader>(), 40);
        assert_eq!(size_of::<OutHeader>(), 16);
        assert_eq!(size_of::<EntInOut>(), 32);
        assert_eq!(size_of::<CmdReq>(), 24);
        assert_eq!(size_of::<Attr>(), 88);
        assert_eq!(size_of::<EntryOut>(), 128);
        assert_eq!(size_of::<AttrOut>(), 104);
        assert_eq!(size_of::<OpenOut>(), 16);
        assert_eq!(size_of::<StatfsOut>(), 80);
        assert_eq!(size_of::<Dirent>(), 24);
        assert_eq!(size_of::<SetattrIn>(), 88);
        assert_eq!(size_of::<ReadIn>(), 40);
        assert_eq!(size_of::<WriteIn>(), 40);
        assert_eq!(size_of::<ReleaseIn>(), 24);
        assert_eq!(size_of::<FallocateIn>(), 32);
        assert_eq!(size_of::<LseekIn>(), 24);
        assert_eq!(size_of::<GetattrIn>(), 16);
        assert_eq!(size_of::<MknodIn>(), 16);
        assert_eq!(size_of::<CreateIn>(), 16);
        assert_eq!(size_of::<FsyncIn>(), 16);
        assert_eq!(size_of::<Rename2In>(), 16);
        assert_eq!(size_of::<OpenIn>(), 8);
        assert_eq!(size_of::<SetxattrIn>(), 8);
        assert_eq!(size_of::<ForgetIn>(), 8);
        assert_eq!(size_of::<BatchForgetIn>(), 8);
        assert_eq!(size_of::<ForgetOne>(), 16);
        assert_eq!(HEADER_SIZE, 288);
    }

    #[test]
    fn short_input_reads_as_none() {
        assert!(read::<ReadIn>(&[0u8; 39]).is_none());
        let r = read::<ReadIn>(&[1u8; 40]).map(|r| r.size);
        assert_eq!(r, Some(0x0101_0101));
    }
}
