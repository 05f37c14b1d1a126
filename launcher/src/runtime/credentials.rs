//! The last step before exec, shared by a container's init and `exec` into a running
//! container: resource limits, then seccomp, the bounding set, the user and groups,
//! the working directory, the capability sets, no_new_privs, and the command resolved
//! on the container's PATH.

use std::ffi::CString;
use std::path::Path;

use anyhow::{Context, Result};

use super::caps::{self, CapSets};
use super::seccomp;
use super::spec::{Rlimit, UserSpec};

/// The command, its path resolved, argv and environment, ready for execve.
pub type Prepared = (CString, Vec<CString>, Vec<CString>);

/// Who and what the process becomes.
#[derive(Debug)]
pub struct ProcessPlan<'a> {
    /// Command and arguments.
    pub argv: &'a [String],
    /// `K=V` environment.
    pub env: &'a [String],
    /// Working directory inside the container.
    pub cwd: &'a Path,
    /// uid and gid.
    pub user: UserSpec,
    /// Supplementary groups besides the gid.
    pub additional_gids: &'a [u32],
    /// In a user namespace with a single mapping (setgroups may be denied).
    pub rootless: bool,
    /// Capability sets.
    pub caps: &'a CapSets,
    /// Set no_new_privs.
    pub no_new_privs: bool,
    /// A seccomp filter.
    pub seccomp: Option<&'a seccomp::Plan>,
}

/// Sets the umask and the resource limits (while still privileged).
pub fn limits(umask: Option<u32>, rlimits: &[Rlimit]) -> Result<()> {
    if let Some(m) = umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
    }
    for r in rlimits {
        nix::sys::resource::setrlimit(r.resource, r.soft, r.hard)
            .with_context(|| format!("setrlimit {:?}", r.resource))?;
    }
    Ok(())
}

/// Drops to `plan`'s credentials (seccomp installed before the capabilities go when
/// no_new_privs is off, as that needs CAP_SYS_ADMIN; after no_new_privs otherwise)
/// and returns what to exec.
pub fn become_process(plan: &ProcessPlan<'_>) -> Result<Prepared> {
    let filter = plan.seccomp.map(seccomp::compile).transpose()?;
    if let (Some(f), false) = (&filter, plan.no_new_privs) {
        // The remaining calls (capabilities, ids, exec) pass through the filter.
        seccomp::install(f)?;
    }
    caps::drop_bounding(&plan.caps.bounding)?;
    switch_user(plan.user, plan.additional_gids, plan.rootless)?;
    nix::unistd::chdir(plan.cwd)
        .with_context(|| format!("chdir to working directory {}", plan.cwd.display()))?;
    if plan.user.uid == 0 {
        caps::set_caps(plan.caps)?;
    }
    if plan.no_new_privs {
        caps::set_no_new_privs()?;
        if let Some(f) = &filter {
            seccomp::install(f)?;
        }
    }
    let path = resolve_command(plan.argv, plan.env);
    let c = |s: &str| CString::new(s).with_context(|| format!("{s:?} contains a NUL byte"));
    let argv = plan.argv.iter().map(|a| c(a)).collect::<Result<Vec<_>>>()?;
    let envp = plan.env.iter().map(|a| c(a)).collect::<Result<Vec<_>>>()?;
    Ok((c(&path)?, argv, envp))
}

fn switch_user(user: UserSpec, additional_gids: &[u32], rootless: bool) -> Result<()> {
    use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
    let gid = Gid::from_raw(user.gid);
    let mut groups = vec![gid];
    groups.extend(additional_gids.iter().map(|g| Gid::from_raw(*g)));
    if let Err(e) = setgroups(&groups) {
        // With a single mapping, setgroups is denied in the user namespace.
        if !(rootless && e == nix::errno::Errno::EPERM) {
            return Err(e).context("setgroups");
        }
    }
    setresgid(gid, gid, gid).with_context(|| format!("setting gid {}", user.gid))?;
    let uid = Uid::from_raw(user.uid);
    setresuid(uid, uid, uid)
        .with_context(|| format!("setting uid {} (is it mapped?)", user.uid))?;
    Ok(())
}

/// Finds argv[0] on the container's PATH (argv[0] itself when it has a '/').
fn resolve_command(argv: &[String], env: &[String]) -> String {
    let Some(cmd) = argv.first() else {
        return String::new();
    };
    if cmd.contains('/') {
        return cmd.clone();
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(cmd);
        if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
            return p.to_string_lossy().into_owned();
        }
    }
    String::new()
}
