//! The generic mount options (`nodev`, `noexec`, the atime family, ...): one table
//! that says, for each, its name, its opposite, its mount(2) bits and how fusermount3
//! is told. `options` parses them, `mount` turns them into `MS_*` flags, `cli` into
//! fuser's mount options; none keeps a list of its own.

/// A generic mount option passed through to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountFlag {
    /// `nodev`.
    NoDev,
    /// `dev`.
    Dev,
    /// `nosuid`.
    NoSuid,
    /// `suid`.
    Suid,
    /// `noexec`.
    NoExec,
    /// `exec`.
    Exec,
    /// `sync`.
    Sync,
    /// `async`.
    Async,
    /// `dirsync`.
    DirSync,
    /// `noatime`.
    NoAtime,
    /// `atime`.
    Atime,
    /// `relatime`.
    Relatime,
    /// `norelatime`.
    NoRelatime,
    /// `strictatime`.
    StrictAtime,
    /// `nostrictatime`.
    NoStrictAtime,
    /// `nodiratime`.
    NoDirAtime,
    /// `diratime`.
    DirAtime,
    /// `lazytime`.
    LazyTime,
    /// `nolazytime`.
    NoLazyTime,
}

use MountFlag as F;

impl MountFlag {
    /// Every flag.
    pub const ALL: [MountFlag; 19] = [
        F::NoDev,
        F::Dev,
        F::NoSuid,
        F::Suid,
        F::NoExec,
        F::Exec,
        F::Sync,
        F::Async,
        F::DirSync,
        F::NoAtime,
        F::Atime,
        F::Relatime,
        F::NoRelatime,
        F::StrictAtime,
        F::NoStrictAtime,
        F::NoDirAtime,
        F::DirAtime,
        F::LazyTime,
        F::NoLazyTime,
    ];

    /// The option's name, as mount(8) spells it.
    pub fn name(self) -> &'static str {
        match self {
            F::NoDev => "nodev",
            F::Dev => "dev",
            F::NoSuid => "nosuid",
            F::Suid => "suid",
            F::NoExec => "noexec",
            F::Exec => "exec",
            F::Sync => "sync",
            F::Async => "async",
            F::DirSync => "dirsync",
            F::NoAtime => "noatime",
            F::Atime => "atime",
            F::Relatime => "relatime",
            F::NoRelatime => "norelatime",
            F::StrictAtime => "strictatime",
            F::NoStrictAtime => "nostrictatime",
            F::NoDirAtime => "nodiratime",
            F::DirAtime => "diratime",
            F::LazyTime => "lazytime",
            F::NoLazyTime => "nolazytime",
        }
    }

    /// The flag named `name`, if it is one.
    pub fn parse(name: &str) -> Option<MountFlag> {
        MountFlag::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The option that undoes this one (a later one overrides it, as in mount(8)).
    pub fn opposite(self) -> Option<MountFlag> {
        Some(match self {
            F::NoDev => F::Dev,
            F::Dev => F::NoDev,
            F::NoSuid => F::Suid,
            F::Suid => F::NoSuid,
            F::NoExec => F::Exec,
            F::Exec => F::NoExec,
            F::Sync => F::Async,
            F::Async => F::Sync,
            F::DirSync => return None,
            F::NoAtime => F::Atime,
            F::Atime => F::NoAtime,
            F::Relatime => F::NoRelatime,
            F::NoRelatime => F::Relatime,
            F::StrictAtime => F::NoStrictAtime,
            F::NoStrictAtime => F::StrictAtime,
            F::NoDirAtime => F::DirAtime,
            F::DirAtime => F::NoDirAtime,
            F::LazyTime => F::NoLazyTime,
            F::NoLazyTime => F::LazyTime,
        })
    }

    /// The `MS_*` bits the option sets and clears.
    pub fn ms_bits(self) -> (libc::c_ulong, libc::c_ulong) {
        match self {
            F::NoDev => (libc::MS_NODEV, 0),
            F::Dev => (0, libc::MS_NODEV),
            F::NoSuid => (libc::MS_NOSUID, 0),
            F::Suid => (0, libc::MS_NOSUID),
            F::NoExec => (libc::MS_NOEXEC, 0),
            F::Exec => (0, libc::MS_NOEXEC),
            F::Sync => (libc::MS_SYNCHRONOUS, 0),
            F::Async => (0, libc::MS_SYNCHRONOUS),
            F::DirSync => (libc::MS_DIRSYNC, 0),
            F::NoAtime => (libc::MS_NOATIME, 0),
            F::Atime => (0, libc::MS_NOATIME),
            F::Relatime => (libc::MS_RELATIME, 0),
            F::NoRelatime => (0, libc::MS_RELATIME),
            F::StrictAtime => (libc::MS_STRICTATIME, 0),
            F::NoStrictAtime => (0, libc::MS_STRICTATIME),
            F::NoDirAtime => (libc::MS_NODIRATIME, 0),
            F::DirAtime => (0, libc::MS_NODIRATIME),
            F::LazyTime => (libc::MS_LAZYTIME, 0),
            F::NoLazyTime => (0, libc::MS_LAZYTIME),
        }
    }

    /// How fusermount3 is told (the rootless mount). `None` for the options it does
    /// not know (libfuse 3.14 refuses the whole mount over `relatime`, `strictatime`,
    /// `nodiratime`, `lazytime` and their opposites): the mount goes on without them.
    pub fn fusermount3_option(self) -> Option<fuser::MountOption> {
        use fuser::MountOption as M;
        Some(match self {
            F::NoDev => M::NoDev,
            F::Dev => M::Dev,
            F::NoSuid => M::NoSuid,
            F::Suid => M::Suid,
            F::NoExec => M::NoExec,
            F::Exec => M::Exec,
            F::Sync => M::Sync,
            F::Async => M::Async,
            F::DirSync => M::DirSync,
            F::NoAtime => M::NoAtime,
            F::Atime => M::Atime,
            F::Relatime
            | F::NoRelatime
            | F::StrictAtime
            | F::NoStrictAtime
            | F::NoDirAtime
            | F::DirAtime
            | F::LazyTime
            | F::NoLazyTime => return None,
        })
    }
}

/// Adds `flag` to `flags`, dropping an earlier copy and its opposite: the last word wins.
pub fn push(flags: &mut Vec<MountFlag>, flag: MountFlag) {
    flags.retain(|f| *f != flag && Some(*f) != flag.opposite());
    flags.push(flag);
}

/// mount(2) flags for `flags`: nodev and nosuid unless `dev`/`suid` (as fusermount3
/// does), read-only without an upper, the last of each pair winning.
pub fn ms_flags(flags: &[MountFlag], writable: bool) -> libc::c_ulong {
    let mut ms = libc::MS_NODEV | libc::MS_NOSUID;
    if !writable {
        ms |= libc::MS_RDONLY;
    }
    for f in flags {
        let (set, clear) = f.ms_bits();
        ms = (ms | set) & !clear;
    }
    ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_parses_back_and_pairs_with_its_opposite() {
        for f in MountFlag::ALL {
            assert_eq!(MountFlag::parse(f.name()), Some(f));
            if let Some(o) = f.opposite() {
                assert_eq!(o.opposite(), Some(f), "{}", f.name());
                let (set, clear) = f.ms_bits();
                let (oset, oclear) = o.ms_bits();
                assert_eq!((set, clear), (oclear, oset), "{} / {}", f.name(), o.name());
            }
        }
        assert_eq!(MountFlag::parse("bogus"), None);
    }

    #[test]
    fn generic_options_become_flags() {
        let p = |v: &[&str]| {
            let mut out = Vec::new();
            for n in v {
                push(&mut out, MountFlag::parse(n).expect("a flag"));
            }
            out
        };
        assert_eq!(ms_flags(&p(&[]), true), libc::MS_NODEV | libc::MS_NOSUID);
        assert_eq!(
            ms_flags(&p(&["dev", "noexec", "noatime"]), false),
            libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NOATIME | libc::MS_RDONLY
        );
        let f = p(&["noexec", "exec", "suid", "nosuid"]);
        assert_eq!(f, [F::Exec, F::NoSuid]);
        assert_eq!(ms_flags(&f, true), libc::MS_NODEV | libc::MS_NOSUID);
        let f = p(&["lazytime", "strictatime", "nostrictatime", "relatime"]);
        assert_eq!(f, [F::LazyTime, F::NoStrictAtime, F::Relatime]);
        assert_eq!(
            ms_flags(&f, true),
            libc::MS_NODEV | libc::MS_NOSUID | libc::MS_LAZYTIME | libc::MS_RELATIME
        );
    }
}
