//! The bpf(2) calls a cgroup v2 device filter needs: load a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program and attach it to a cgroup. Exists because
//! neither nix nor rustix wraps bpf(2), and libbpf (C, with libelf) is a heavy
//! dependency for two calls.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// `BPF_PROG_LOAD` from `linux/bpf.h`.
const BPF_PROG_LOAD: libc::c_long = 5;
/// `BPF_PROG_ATTACH`.
const BPF_PROG_ATTACH: libc::c_long = 8;
/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`, the attach type.
const BPF_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: programs attached by others (systemd, a parent's) stay, and
/// each must allow.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, with room for the fields after it
/// (zero: the kernel checks that the bytes it does not know are zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    rest: [u64; 12],
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    rest: [u32; 11],
}

/// Loads a cgroup device program of `insns` (each `struct bpf_insn` as the 8 bytes
/// the kernel reads, little-endian). On a verifier refusal the error carries the
/// verifier's log.
pub fn load_cgroup_device_program(insns: &[u64]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| io::Error::other("program too long"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: bpf(BPF_PROG_LOAD, attr, size) reads `attr` (size bytes, all
    // initialised), the `insn_cnt` instructions at `insns` and the NUL-terminated
    // license, and writes at most `log_size` bytes into `log`; all of them live
    // across the call. It returns a new descriptor, owned by nothing else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if r < 0 {
        let err = io::Error::last_os_error();
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]);
        if text.trim().is_empty() {
            return Err(err);
        }
        return Err(io::Error::new(
            err.kind(),
            format!("{err}; verifier: {}", text.trim()),
        ));
    }
    // SAFETY: `r` is a descriptor the kernel just returned to us and nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Attaches `prog` to the cgroup opened as `cgroup` (a directory descriptor), beside
/// the programs already there. The attachment lives as long as the cgroup.
pub fn attach_cgroup_device_program(cgroup: impl AsFd, prog: impl AsFd) -> io::Result<()> {
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_bpf_fd: prog.as_fd().as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: bpf(BPF_PROG_ATTACH, attr, size) only reads `attr`, which lives across
    // the call; the descriptors in it are borrowed for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
