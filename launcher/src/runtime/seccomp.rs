//! A seccomp filter for the container's process, from a plan of per-syscall actions
//! (what OCI `linux.seccomp` says), compiled to classic BPF with seccompiler and
//! installed just before exec.
//!
//! seccompiler builds filters with one match action each, so a plan becomes a stack
//! of filters, which the kernel evaluates all, taking the most restrictive result
//! (for equal precedence, the filter installed last): first one whose default is the
//! plan's default and which allows every syscall a rule at most as restrictive names;
//! then one per other action, matching its rules and allowing the rest. Syscalls of
//! another architecture than the runtime's kill the process.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// What a filter does with a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let it run.
    Allow,
    /// Fail it with this errno.
    Errno(u32),
    /// Kill the thread.
    KillThread,
    /// Kill the process.
    KillProcess,
    /// Send SIGSYS.
    Trap,
    /// Let it run and log it.
    Log,
    /// Notify a tracer with this value.
    Trace(u32),
}

impl Action {
    /// The kernel's precedence (higher wins when filters disagree).
    fn precedence(self) -> u8 {
        match self {
            Action::KillProcess => 6,
            Action::KillThread => 5,
            Action::Trap => 4,
            Action::Errno(_) => 3,
            Action::Trace(_) => 2,
            Action::Log => 1,
            Action::Allow => 0,
        }
    }

    fn to_seccompiler(self) -> SeccompAction {
        match self {
            Action::Allow => SeccompAction::Allow,
            Action::Errno(e) => SeccompAction::Errno(e),
            Action::KillThread => SeccompAction::KillThread,
            Action::KillProcess => SeccompAction::KillProcess,
            Action::Trap => SeccompAction::Trap,
            Action::Log => SeccompAction::Log,
            Action::Trace(v) => SeccompAction::Trace(v),
        }
    }
}

/// How an argument is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `==`.
    Eq,
    /// `>=`.
    Ge,
    /// `>`.
    Gt,
    /// `(arg & mask) == value`, the mask given here.
    MaskedEq(u64),
}

/// One argument condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCmp {
    /// Argument index (0..=5).
    pub index: u8,
    /// The comparison.
    pub op: Cmp,
    /// The value compared with.
    pub value: u64,
}

/// One rule: syscalls (by number), the action, and conditions. Conditions on distinct
/// arguments must all hold; several on the same argument are alternatives (as
/// libseccomp reads an OCI rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Syscall numbers for the runtime's architecture.
    pub syscalls: Vec<i64>,
    /// What to do when it matches.
    pub action: Action,
    /// Conditions (none: every call matches).
    pub args: Vec<ArgCmp>,
}

/// A whole filter plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What unmatched syscalls get.
    pub default: Action,
    /// The rules.
    pub rules: Vec<Rule>,
}

fn arch() -> Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| anyhow::anyhow!("seccomp on {}: {e}", std::env::consts::ARCH))
}

/// The alternatives (each a conjunction) a rule's conditions stand for.
fn alternatives(args: &[ArgCmp]) -> Result<Vec<SeccompRule>> {
    let cond = |a: &ArgCmp| {
        let op = match a.op {
            Cmp::Ne => SeccompCmpOp::Ne,
            Cmp::Lt => SeccompCmpOp::Lt,
            Cmp::Le => SeccompCmpOp::Le,
            Cmp::Eq => SeccompCmpOp::Eq,
            Cmp::Ge => SeccompCmpOp::Ge,
            Cmp::Gt => SeccompCmpOp::Gt,
            Cmp::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
        };
        SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, a.value)
            .map_err(|e| anyhow::anyhow!("seccomp argument {}: {e}", a.index))
    };
    let same_index = args.windows(2).all(|w| w[0].index == w[1].index);
    if args.len() > 1 && same_index {
        args.iter()
            .map(|a| SeccompRule::new(vec![cond(a)?]).map_err(|e| anyhow::anyhow!("{e}")))
            .collect()
    } else {
        let all = args.iter().map(cond).collect::<Result<Vec<_>>>()?;
        Ok(vec![
            SeccompRule::new(all).map_err(|e| anyhow::anyhow!("{e}"))?,
        ])
    }
}

/// Adds `rule` to a filter's syscall map: unconditional wins over conditions.
fn add(
    map: &mut BTreeMap<i64, Vec<SeccompRule>>,
    uncond: &mut Vec<i64>,
    rule: &Rule,
) -> Result<()> {
    for nr in &rule.syscalls {
        if rule.args.is_empty() {
            uncond.push(*nr);
            map.insert(*nr, Vec::new());
        } else if !uncond.contains(nr) {
            map.entry(*nr)
                .or_default()
                .extend(alternatives(&rule.args)?);
        }
    }
    Ok(())
}

/// Compiles `plan` to the programs to install, in order.
pub fn compile(plan: &Plan) -> Result<Vec<BpfProgram>> {
    let arch = arch()?;
    let mut programs = Vec::new();
    let build = |map: BTreeMap<i64, Vec<SeccompRule>>, mismatch: Action, matched: Action| {
        let f = SeccompFilter::new(
            map,
            mismatch.to_seccompiler(),
            matched.to_seccompiler(),
            arch,
        )
        .map_err(|e| anyhow::anyhow!("building a seccomp filter: {e}"))?;
        BpfProgram::try_from(f).map_err(|e| anyhow::anyhow!("compiling a seccomp filter: {e}"))
    };
    if plan.default != Action::Allow {
        let (mut map, mut uncond) = (BTreeMap::new(), Vec::new());
        for r in plan.rules.iter().filter(|r| {
            r.action != plan.default && r.action.precedence() <= plan.default.precedence()
        }) {
            add(&mut map, &mut uncond, r)?;
        }
        programs.push(build(map, plan.default, Action::Allow)?);
    }
    let mut actions: Vec<Action> = Vec::new();
    for r in &plan.rules {
        if r.action != Action::Allow && r.action != plan.default && !actions.contains(&r.action) {
            actions.push(r.action);
        }
    }
    for a in actions {
        let (mut map, mut uncond) = (BTreeMap::new(), Vec::new());
        for r in plan.rules.iter().filter(|r| r.action == a) {
            add(&mut map, &mut uncond, r)?;
        }
        programs.push(build(map, Action::Allow, a)?);
    }
    if programs.is_empty() {
        bail!("the seccomp profile filters nothing (default and every rule allow)");
    }
    Ok(programs)
}

/// Installs the programs on the calling thread (needs no_new_privs or CAP_SYS_ADMIN).
pub fn install(programs: &[BpfProgram]) -> Result<()> {
    for p in programs {
        seccompiler::apply_filter(p).context("installing the seccomp filter")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_becomes_a_stack_of_filters() -> Result<()> {
        let plan = Plan {
            default: Action::Errno(38),
            rules: vec![
                Rule {
                    syscalls: vec![0, 1],
                    action: Action::Allow,
                    args: vec![],
                },
                Rule {
                    syscalls: vec![83],
                    action: Action::Errno(1),
                    args: vec![],
                },
                Rule {
                    syscalls: vec![41],
                    action: Action::Errno(97),
                    args: vec![
                        ArgCmp {
                            index: 0,
                            op: Cmp::Eq,
                            value: 40,
                        },
                        ArgCmp {
                            index: 0,
                            op: Cmp::Eq,
                            value: 16,
                        },
                    ],
                },
            ],
        };
        // The default's filter, then one per other errno.
        assert_eq!(compile(&plan)?.len(), 3);
        let allow_all = Plan {
            default: Action::Allow,
            rules: vec![],
        };
        assert!(compile(&allow_all).is_err());
        Ok(())
    }
}
