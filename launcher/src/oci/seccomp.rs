//! OCI `linux.seccomp` → the core's seccomp plan (`crate::runtime::seccomp`). Syscall
//! names this architecture does not have are skipped, as libseccomp (and so runc)
//! skips them; what cannot be honoured (notify actions, a listener, filter flags, a
//! profile without this architecture) fails with the field's name.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::runtime::seccomp::{Action, ArgCmp, Cmp, Plan, Rule};

/// The profile's name for the runtime's architecture.
pub fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => "",
    }
}

/// Reads `linux.seccomp` (`None`: no filter, also for a profile that allows all).
pub fn plan(raw: &Value) -> Result<Option<Plan>> {
    let Some(s) = raw.pointer("/linux/seccomp") else {
        return Ok(None);
    };
    if s.is_null() {
        return Ok(None);
    }
    super::config::allow_only(
        s,
        "linux.seccomp",
        &[
            "defaultAction",
            "defaultErrnoRet",
            "architectures",
            "flags",
            "syscalls",
        ],
    )?;
    if s.get("flags").is_some_and(super::config::non_empty) {
        bail!("linux.seccomp.flags is not supported by strata-runtime yet");
    }
    let archs: Vec<&str> = s
        .get("architectures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !archs.is_empty() && !archs.contains(&native_arch()) {
        bail!(
            "linux.seccomp.architectures {archs:?} lacks this machine's {}",
            native_arch()
        );
    }
    let default_errno = s
        .get("defaultErrnoRet")
        .and_then(Value::as_u64)
        .map(|e| e as u32);
    let default = action(
        s.get("defaultAction").and_then(Value::as_str).unwrap_or(""),
        default_errno,
    )
    .context("linux.seccomp.defaultAction")?;
    let mut rules = Vec::new();
    for (i, r) in s
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("linux.seccomp.syscalls[{i}]");
        super::config::allow_only(r, &at, &["names", "action", "errnoRet", "args"])?;
        let errno = r.get("errnoRet").and_then(Value::as_u64).map(|e| e as u32);
        let act = action(r.get("action").and_then(Value::as_str).unwrap_or(""), errno)
            .with_context(|| format!("{at}.action"))?;
        let syscalls: Vec<i64> = r
            .get("names")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|n| n.parse::<syscalls::Sysno>().ok())
            .map(|s| i64::from(s.id()))
            .collect();
        let mut args = Vec::new();
        for (j, a) in r
            .get("args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{at}.args[{j}]");
            super::config::allow_only(a, &at, &["index", "value", "valueTwo", "op"])?;
            let index = a
                .get("index")
                .and_then(Value::as_u64)
                .filter(|i| *i <= 5)
                .with_context(|| format!("{at}.index must be 0 to 5"))?;
            let value = a.get("value").and_then(Value::as_u64).unwrap_or(0);
            let two = a.get("valueTwo").and_then(Value::as_u64).unwrap_or(0);
            let (op, value) = match a.get("op").and_then(Value::as_str).unwrap_or("") {
                "SCMP_CMP_NE" => (Cmp::Ne, value),
                "SCMP_CMP_LT" => (Cmp::Lt, value),
                "SCMP_CMP_LE" => (Cmp::Le, value),
                "SCMP_CMP_EQ" => (Cmp::Eq, value),
                "SCMP_CMP_GE" => (Cmp::Ge, value),
                "SCMP_CMP_GT" => (Cmp::Gt, value),
                "SCMP_CMP_MASKED_EQ" => (Cmp::MaskedEq(value), two),
                other => bail!("{at}.op {other:?} is no seccomp comparison"),
            };
            args.push(ArgCmp {
                index: index as u8,
                op,
                value,
            });
        }
        if !syscalls.is_empty() && act != default {
            rules.push(Rule {
                syscalls,
                action: act,
                args,
            });
        }
    }
    if default == Action::Allow && rules.iter().all(|r| r.action == Action::Allow) {
        return Ok(None);
    }
    let plan = Plan { default, rules };
    // Compiled once here so a bad profile fails create before anything is made.
    crate::runtime::seccomp::compile(&plan).context("linux.seccomp")?;
    Ok(Some(plan))
}

/// An OCI action name; `errno` is the rule's `errnoRet` (EPERM when absent).
fn action(name: &str, errno: Option<u32>) -> Result<Action> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_TRACE" => Action::Trace(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_NOTIFY" => bail!("SCMP_ACT_NOTIFY is not supported by strata-runtime yet"),
        other => bail!("unknown seccomp action {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_becomes_a_plan() -> Result<()> {
        let raw = serde_json::json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "syscalls": [
                {"names": ["read", "write", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }}});
        let p = plan(&raw)?.context("a plan")?;
        assert_eq!(p.default, Action::Errno(38));
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[1].action, Action::Errno(1));
        Ok(())
    }

    #[test]
    fn what_cannot_be_honoured_is_named() {
        for (s, want) in [
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
                "defaultAction",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}),
                "linux.seccomp.listenerPath",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}),
                "linux.seccomp.flags",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_S390X"]}),
                "architectures",
            ),
        ] {
            let raw = serde_json::json!({"linux": {"seccomp": s}});
            let err = plan(&raw).map(|_| ()).unwrap_err();
            assert!(format!("{err:#}").contains(want), "{err:#}");
        }
        let allow_all =
            serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}});
        assert!(matches!(plan(&allow_all), Ok(None)));
    }
}
