//! Device rules (OCI `linux.resources.devices`) on cgroup v2, which has no devices
//! controller: the rules, then [`standard_allowed`], are compiled into an eBPF
//! program of type `BPF_PROG_TYPE_CGROUP_DEVICE` and attached to the container's
//! cgroup (`sys/bpf.rs` makes the calls). The decision is v1's: the last rule that
//! matches a request wins, a request no rule matches is allowed (a new v1 devices
//! cgroup starts allowing all; the usual list starts with a deny of everything).
//! An allow rule matches when it grants every access asked (`r`, `w`, `m`), a deny
//! rule when it refuses any of them. [`decide`] is that decision in Rust: the tests
//! hold the kernel's answers to it.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::devices::{DeviceRule, standard_allowed};

/// `BPF_DEVCG_DEV_BLOCK` / `BPF_DEVCG_DEV_CHAR`: the request's type, in the low 16
/// bits of `bpf_cgroup_dev_ctx.access_type`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// `BPF_DEVCG_ACC_MKNOD` / `_READ` / `_WRITE`, in its high 16 bits.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One device access a process asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// `c` or `b`.
    pub kind: char,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Some of `r`, `w`, `m`.
    pub access: &'static str,
}

impl Request {
    /// A request for `access` to device `kind` `major`:`minor`.
    pub fn new(kind: char, major: u32, minor: u32, access: &'static str) -> Request {
        Request {
            kind,
            major,
            minor,
            access,
        }
    }
}

/// The bits of `access` letters.
fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |b, c| {
        b | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// A rule's major or minor: `None` (or a negative number, runc's wildcard -1) for
/// any; more than 32 bits is an error.
fn number(v: Option<i64>, what: &str, rule: &DeviceRule) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .with_context(|| format!("device rule {}: {what} {n} is out of range", rule.line())),
    }
}

/// Whether `rule` matches `req`, by the module's rule.
fn matches(rule: &DeviceRule, req: &Request) -> bool {
    let kind = rule.kind == 'a' || rule.kind == req.kind;
    let num = |v: Option<i64>, n: u32| v.is_none_or(|v| v < 0 || v == i64::from(n));
    let want = access_bits(req.access);
    let has = access_bits(&rule.access);
    let access = if rule.allow {
        want & !has == 0
    } else {
        want & has != 0
    };
    kind && num(rule.major, req.major) && num(rule.minor, req.minor) && access
}

/// Whether `rules` (followed by the standard nodes) allow `req`: the decision the
/// compiled program makes.
pub fn decide(rules: &[DeviceRule], req: &Request) -> bool {
    let all: Vec<DeviceRule> = rules.iter().cloned().chain(standard_allowed()).collect();
    all.iter()
        .rev()
        .find(|r| matches(r, req))
        .is_none_or(|r| r.allow)
}

/// eBPF instruction encoding (`struct bpf_insn`, little-endian: code, dst and src
/// registers in one byte, a 16-bit offset, a 32-bit immediate).
mod insn {
    /// An instruction as the 8 bytes the kernel reads, as one little-endian `u64`.
    pub fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
        u64::from(code)
            | (u64::from(dst & 0xf) << 8)
            | (u64::from(src & 0xf) << 12)
            | (u64::from(off as u16) << 16)
            | (u64::from(imm as u32) << 32)
    }
    /// `dst = *(u32 *)(src + off)`.
    pub fn load_u32(dst: u8, src: u8, off: i16) -> u64 {
        raw(0x61, dst, src, off, 0)
    }
    /// `dst = src` (32-bit).
    pub fn mov32_reg(dst: u8, src: u8) -> u64 {
        raw(0xbc, dst, src, 0, 0)
    }
    /// `dst = imm` (64-bit).
    pub fn mov64_imm(dst: u8, imm: i32) -> u64 {
        raw(0xb7, dst, 0, 0, imm)
    }
    /// `dst >>= imm` (32-bit).
    pub fn rsh32_imm(dst: u8, imm: i32) -> u64 {
        raw(0x74, dst, 0, 0, imm)
    }
    /// `dst &= imm` (32-bit).
    pub fn and32_imm(dst: u8, imm: i32) -> u64 {
        raw(0x54, dst, 0, 0, imm)
    }
    /// `if (u32)dst != imm goto +off`.
    pub fn jne32_imm(dst: u8, imm: i32, off: i16) -> u64 {
        raw(0x56, dst, 0, off, imm)
    }
    /// `if (u32)dst == imm goto +off`.
    pub fn jeq32_imm(dst: u8, imm: i32, off: i16) -> u64 {
        raw(0x16, dst, 0, off, imm)
    }
    /// `return r0`.
    pub fn exit() -> u64 {
        raw(0x95, 0, 0, 0, 0)
    }
}

/// The program for `rules` followed by the standard nodes: registers r2 = type,
/// r3 = access, r4 = major, r5 = minor, then one block per rule from the last to
/// the first, each returning its verdict when it matches and jumping over its own
/// end otherwise; allowed when none does.
pub fn compile(rules: &[DeviceRule]) -> Result<Vec<u64>> {
    use insn::*;
    let all: Vec<DeviceRule> = rules.iter().cloned().chain(standard_allowed()).collect();
    let mut prog = vec![
        load_u32(2, 1, 0),
        mov32_reg(3, 2),
        rsh32_imm(3, 16),
        and32_imm(2, 0xffff),
        load_u32(4, 1, 4),
        load_u32(5, 1, 8),
    ];
    for rule in all.iter().rev() {
        // Tests jump to the end of the block when the rule does not match; their
        // offsets are set once the block's length is known.
        let mut block = Vec::new();
        let mut jumps = Vec::new();
        let mut test = |block: &mut Vec<u64>, ins: u64| {
            jumps.push(block.len());
            block.push(ins);
        };
        match rule.kind {
            'a' => {}
            'c' => test(&mut block, jne32_imm(2, DEV_CHAR, 0)),
            'b' => test(&mut block, jne32_imm(2, DEV_BLOCK, 0)),
            k => bail!("device rule {}: type {k:?}", rule.line()),
        }
        if let Some(m) = number(rule.major, "major", rule)? {
            test(&mut block, jne32_imm(4, m as i32, 0));
        }
        if let Some(m) = number(rule.minor, "minor", rule)? {
            test(&mut block, jne32_imm(5, m as i32, 0));
        }
        let has = access_bits(&rule.access);
        block.push(mov32_reg(1, 3));
        if rule.allow {
            // Asked for something this rule does not grant: no match.
            block.push(and32_imm(1, !has & 0x7));
            test(&mut block, jne32_imm(1, 0, 0));
        } else {
            // Asked for nothing this rule refuses: no match.
            block.push(and32_imm(1, has));
            test(&mut block, jeq32_imm(1, 0, 0));
        }
        block.push(mov64_imm(0, i32::from(rule.allow)));
        block.push(exit());
        for &i in &jumps {
            let off = i16::try_from(block.len() - i - 1).context("device rule block too long")?;
            block[i] |= u64::from(off as u16) << 16;
        }
        prog.extend(block);
    }
    prog.push(insn::mov64_imm(0, 1));
    prog.push(insn::exit());
    Ok(prog)
}

/// Compiles `rules` and attaches the program to the cgroup v2 directory `dir`.
pub fn apply_v2(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let prog = compile(rules)?;
    let fd = crate::sys::bpf::load_cgroup_device_program(&prog)
        .context("loading the cgroup device program (linux.resources.devices)")?;
    let cg =
        std::fs::File::open(dir).with_context(|| format!("opening cgroup {}", dir.display()))?;
    crate::sys::bpf::attach_cgroup_device_program(&cg, &fd).with_context(|| {
        format!(
            "attaching the device program (linux.resources.devices) to cgroup {}",
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        kind: char,
        major: Option<i64>,
        minor: Option<i64>,
        a: &str,
    ) -> DeviceRule {
        DeviceRule::new(allow, kind, major, minor, a).expect("a valid rule")
    }

    #[test]
    fn the_last_matching_rule_wins() {
        let podman = [
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', Some(10), Some(229), "rwm"),
        ];
        assert!(
            decide(&podman, &Request::new('c', 10, 229, "rw")),
            "fuse allowed"
        );
        assert!(
            decide(&podman, &Request::new('c', 1, 3, "rw")),
            "null is standard"
        );
        assert!(
            !decide(&podman, &Request::new('b', 7, 0, "r")),
            "loop0 denied"
        );
        assert!(
            !decide(&podman, &Request::new('c', 10, 237, "r")),
            "loop-control denied"
        );
        assert!(
            decide(&[], &Request::new('b', 8, 0, "r")),
            "no rule: allowed"
        );
        let read_only = [
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'b', Some(7), None, "r"),
        ];
        assert!(decide(&read_only, &Request::new('b', 7, 3, "r")));
        assert!(
            !decide(&read_only, &Request::new('b', 7, 3, "rw")),
            "w not granted"
        );
        let deny_write = [rule(false, 'c', Some(10), Some(229), "w")];
        assert!(decide(&deny_write, &Request::new('c', 10, 229, "r")));
        assert!(!decide(&deny_write, &Request::new('c', 10, 229, "rw")));
        assert!(!decide(&deny_write, &Request::new('c', 10, 229, "w")));
        assert!(decide(
            &[rule(false, 'c', Some(-1), Some(-1), "m")],
            &Request::new('c', 5, 5, "r")
        ));
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let big = rule(true, 'c', Some(1 << 33), None, "r");
        let e = compile(&[big]).expect_err("a major past 32 bits");
        assert!(format!("{e:#}").contains("out of range"), "{e:#}");
    }

    #[test]
    fn every_block_ends_in_an_exit_and_jumps_stay_inside_it() {
        let prog = compile(&[rule(false, 'a', None, None, "rwm")]).expect("compiles");
        assert_eq!(prog.last().copied(), Some(insn::exit()));
        for (i, ins) in prog.iter().enumerate() {
            let code = (*ins & 0xff) as u8;
            if code == 0x56 || code == 0x16 {
                let off = ((*ins >> 16) & 0xffff) as u16 as i16;
                assert!(off > 0, "forward jumps only");
                let target = i + 1 + off as usize;
                assert!(target < prog.len(), "jump {i} lands inside the program");
            }
        }
    }
}
