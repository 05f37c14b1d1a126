//! A bundle's `config.json`, read with oci-spec and translated into the launcher's
//! [`RunSpec`]. Whatever the runtime cannot honour fails the translation with the
//! field's name: nothing present in the file is ignored silently.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::Value;

use super::names;
use crate::runtime::RunSpec;
use crate::runtime::caps::CapSets;
use crate::runtime::cgroups::devices::DeviceRule;
use crate::runtime::idmap::{IdMapping, MapRange};
use crate::runtime::mounts::{Bind, MountSpec};
use crate::runtime::namespaces::NsPlan;
use crate::runtime::spec::{Driver, Limits, Network, Rlimit};

/// A bundle's configuration, translated.
#[derive(Debug)]
pub struct Translated {
    /// What the container core runs.
    pub spec: RunSpec,
    /// The cgroup path (`linux.cgroupsPath`, else `strata-runtime/<id>` under the
    /// runtime's own cgroup).
    pub cgroups_path: PathBuf,
    /// `annotations`, reported by `state`.
    pub annotations: HashMap<String, String>,
    /// `linux.resources.devices`, for the cgroup.
    pub device_rules: Vec<DeviceRule>,
    /// The hooks run by `start` and `delete`.
    pub hooks: super::hooks::Hooks,
}

/// Where the core puts a created container's pieces.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The container's id.
    pub id: String,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// Its exec fifo.
    pub exec_fifo: PathBuf,
    /// Whether a console socket was given (`process.terminal` needs one).
    pub console: bool,
    /// A new session keyring (not `--no-new-keyring`).
    pub new_keyring: bool,
    /// `--preserve-fds N`.
    pub preserve_fds: u32,
}

/// Reads `<bundle>/config.json` and translates it for the container of `at`.
pub fn load(bundle: &Path, at: &Placement) -> Result<Translated> {
    load_with(bundle, at, None)
}

/// As [`load`], with `process` (an `exec --process` file's object) in place of the
/// config's `process`.
pub fn load_with(bundle: &Path, at: &Placement, process: Option<Value>) -> Result<Translated> {
    let path = bundle.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut raw: Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {} as JSON", path.display()))?;
    if let (Some(p), Some(obj)) = (process, raw.as_object_mut()) {
        obj.insert("process".into(), p);
    }
    refuse_unsupported(&raw)?;
    let spec: Spec = serde_json::from_value(raw.clone())
        .with_context(|| format!("{} is no OCI runtime configuration", path.display()))?;
    translate(&spec, &raw, bundle, at)
}

/// Fields (a JSON path, dotted) the runtime cannot honour in this version, and why.
fn refuse_unsupported(raw: &Value) -> Result<()> {
    allow_only(
        raw,
        "",
        &[
            "ociVersion",
            "root",
            "mounts",
            "process",
            "hostname",
            "domainname",
            "annotations",
            "linux",
            "hooks",
        ],
    )?;
    if let Some(p) = raw.get("process") {
        allow_only(
            p,
            "process",
            &[
                "terminal",
                "user",
                "args",
                "env",
                "cwd",
                "capabilities",
                "rlimits",
                "noNewPrivileges",
                "oomScoreAdj",
            ],
        )?;
        if let Some(u) = p.get("user") {
            allow_only(
                u,
                "process.user",
                &["uid", "gid", "umask", "additionalGids"],
            )?;
        }
        if let Some(c) = p.get("capabilities") {
            allow_only(
                c,
                "process.capabilities",
                &[
                    "bounding",
                    "effective",
                    "permitted",
                    "inheritable",
                    "ambient",
                ],
            )?;
            if c.get("ambient").is_some_and(non_empty) {
                bail!("process.capabilities.ambient is not supported by strata-runtime yet");
            }
        }
    }
    if let Some(r) = raw.get("root") {
        allow_only(r, "root", &["path", "readonly"])?;
    }
    if let Some(ms) = raw.get("mounts").and_then(Value::as_array) {
        for (i, m) in ms.iter().enumerate() {
            allow_only(
                m,
                &format!("mounts[{i}]"),
                &["destination", "type", "source", "options"],
            )?;
        }
    }
    if let Some(l) = raw.get("linux") {
        allow_only(
            l,
            "linux",
            &[
                "namespaces",
                "uidMappings",
                "gidMappings",
                "resources",
                "cgroupsPath",
                "maskedPaths",
                "readonlyPaths",
                "devices",
                "sysctl",
                "seccomp",
                "rootfsPropagation",
            ],
        )?;
        for empty_only in ["devices"] {
            if l.get(empty_only).is_some_and(non_empty) {
                bail!(
                    "linux.{empty_only} is not supported by strata-runtime yet{}",
                    match empty_only {
                        "devices" => " (only the standard /dev nodes are made)",
                        _ => "",
                    }
                );
            }
        }
        if let Some(r) = l.get("resources") {
            check_resources(r)?;
        }
    }
    Ok(())
}

/// Refuses, by name, what `linux.resources` holds beyond memory.limit and swap, cpu.quota,
/// period and shares, pids.limit and device rules.
fn check_resources(r: &Value) -> Result<()> {
    allow_only(r, "linux.resources", &["memory", "cpu", "pids", "devices"])?;
    for (i, d) in r
        .get("devices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        allow_only(
            d,
            &format!("linux.resources.devices[{i}]"),
            &["allow", "type", "major", "minor", "access"],
        )?;
    }
    if let Some(m) = r.get("memory") {
        allow_only(m, "linux.resources.memory", &["limit", "swap"])?;
    }
    if let Some(c) = r.get("cpu") {
        allow_only(c, "linux.resources.cpu", &["quota", "period", "shares"])?;
    }
    if let Some(p) = r.get("pids") {
        allow_only(p, "linux.resources.pids", &["limit"])?;
    }
    Ok(())
}

/// Fails naming the first key of object `v` not in `allowed`.
pub(super) fn allow_only(v: &Value, at: &str, allowed: &[&str]) -> Result<()> {
    if let Some(obj) = v.as_object() {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                let name = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                bail!("{name} is not supported by strata-runtime yet");
            }
        }
    }
    Ok(())
}

/// Whether a JSON value carries anything (a non-empty array or object, or a scalar).
pub(super) fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn translate(spec: &Spec, raw: &Value, bundle: &Path, at: &Placement) -> Result<Translated> {
    let process = spec.process().as_ref().context("process is missing")?;
    let argv = process.args().clone().unwrap_or_default();
    if argv.is_empty() {
        bail!("process.args is empty");
    }
    let cwd = process.cwd().to_string_lossy().into_owned();
    if !cwd.starts_with('/') {
        bail!("process.cwd {cwd:?} is not an absolute path");
    }
    let terminal = process.terminal().unwrap_or(false);
    match (terminal, at.console) {
        (true, false) => bail!("process.terminal is true: --console-socket is required"),
        (false, true) => bail!("--console-socket is given but process.terminal is false"),
        _ => {}
    }
    let user = process.user();
    let root = spec.root().as_ref().context("root is missing")?;
    let rootfs = bundle.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs)
        .with_context(|| format!("root.path {}", rootfs.display()))?;
    if !rootfs.is_dir() {
        bail!("root.path {} is not a directory", rootfs.display());
    }
    let (namespaces, network, userns) = namespaces(spec)?;
    let idmap = id_mapping(spec, userns)?;
    let mut sysctl = sysctls(spec, &namespaces)?;
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        if !namespaces.unshare.contains(CloneFlags::CLONE_NEWUTS) {
            bail!("domainname is set but linux.namespaces has no new uts namespace");
        }
        // The uts namespace's domain name is its kernel.domainname sysctl.
        sysctl.retain(|(k, _)| k != "kernel.domainname");
        sysctl.push(("kernel.domainname".into(), d.to_string()));
    }
    let hostname = spec.hostname().clone().unwrap_or_default();
    if !hostname.is_empty() && !namespaces.unshare.contains(CloneFlags::CLONE_NEWUTS) {
        bail!("hostname is set but linux.namespaces has no new uts namespace");
    }
    let caps = capabilities(raw)?;
    if user.uid() != 0 && !(caps.effective.is_empty() && caps.permitted.is_empty()) {
        bail!(
            "process.capabilities: effective or permitted capabilities for uid {} are not \
             supported by strata-runtime yet (only uid 0 keeps capabilities)",
            user.uid()
        );
    }
    let mut rlimits = Vec::new();
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        rlimits.push(Rlimit {
            resource: names::rlimit(&name).with_context(|| "process.rlimits".to_string())?,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    let linux = spec.linux().as_ref();
    let mounts = spec
        .mounts()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| {
            mount(
                &m.destination().to_string_lossy(),
                m.typ().as_deref(),
                m.source().as_deref(),
                m.options().as_deref().unwrap_or_default(),
            )
            .with_context(|| format!("mounts[{i}] ({})", m.destination().display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let cgroups_path = match linux.and_then(|l| l.cgroups_path().clone()) {
        Some(p) if p.to_string_lossy().contains(':') => bail!(
            "linux.cgroupsPath {} is in systemd's form, which needs --systemd-cgroup \
             (not supported by strata-runtime)",
            p.display()
        ),
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => PathBuf::from("strata-runtime").join(&at.id),
    };
    let annotations = spec.annotations().clone().unwrap_or_default();
    let (hooks, creation_hooks) = super::hooks::from_config(
        raw,
        serde_json::json!({
            "ociVersion": oci_spec::runtime::VERSION,
            "id": at.id,
            "status": "creating",
            "pid": 0,
            "bundle": bundle,
            "annotations": annotations,
        }),
    )?;
    let spec_out = RunSpec {
        id: at.id.clone(),
        name: at.id.clone(),
        dir: at.state_dir.clone(),
        union: None,
        merged: rootfs,
        driver: Driver::Kernel,
        argv,
        env: process.env().clone().unwrap_or_default(),
        cwd,
        user: Some(format!("{}:{}", user.uid(), user.gid())),
        hostname,
        namespaces,
        mounts: Some(mounts),
        masked_paths: linux
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default(),
        readonly_paths: linux
            .and_then(|l| l.readonly_paths().clone())
            .unwrap_or_default(),
        no_pivot: false,
        rootfs_readonly: root.readonly().unwrap_or(false),
        rootfs_propagation: rootfs_propagation(
            linux.and_then(|l| l.rootfs_propagation().as_deref()),
        )?,
        caps,
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        rlimits,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        umask: user.umask(),
        sysctl,
        oom_score_adj: process.oom_score_adj(),
        new_keyring: at.new_keyring,
        hooks: creation_hooks,
        preserve_fds: Some(at.preserve_fds),
        seccomp: super::seccomp::plan(raw)?,
        exec_fifo: Some(at.exec_fifo.clone()),
        outlives_setup: true,
        network,
        net_helper: None,
        limits: limits(raw)?,
        volumes: Vec::new(),
        tty: terminal,
        interactive: true,
        init: false,
        in_userns: idmap.is_none() && crate::runtime::idmap::in_user_namespace(),
        idmap,
        remove: false,
        detached: false,
        store_root: at.state_dir.clone(),
    };
    Ok(Translated {
        spec: spec_out,
        cgroups_path,
        annotations,
        device_rules: device_rules(raw)?,
        hooks,
    })
}

/// `linux.uidMappings`/`gidMappings` → the new user namespace's maps (both needed
/// with a user namespace, neither without).
fn id_mapping(spec: &Spec, userns: bool) -> Result<Option<IdMapping>> {
    let linux = spec.linux().as_ref();
    let ranges = |list: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> Vec<MapRange> {
        list.into_iter()
            .flatten()
            .map(|m| MapRange {
                container: m.container_id(),
                host: m.host_id(),
                count: m.size(),
            })
            .collect()
    };
    let uid = ranges(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = ranges(linux.and_then(|l| l.gid_mappings().as_ref()));
    match (userns, uid.is_empty() || gid.is_empty()) {
        (true, false) => Ok(Some(IdMapping::Explicit { uid, gid })),
        (true, true) => bail!(
            "linux.namespaces has a new user namespace: linux.uidMappings and \
             linux.gidMappings are both required"
        ),
        (false, _) if !uid.is_empty() || !gid.is_empty() => {
            bail!("linux.uidMappings/gidMappings need a new user namespace in linux.namespaces")
        }
        (false, _) => Ok(None),
    }
}

/// `linux.namespaces` → what the setup process unshares and joins, the network mode
/// (a new network namespace gets its loopback up) and whether a user namespace is new
/// (the setup process makes it first, the runtime writes its maps).
fn namespaces(spec: &Spec) -> Result<(NsPlan, Network, bool)> {
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut plan = NsPlan {
        unshare: CloneFlags::empty(),
        join: Vec::new(),
    };
    let mut mount = false;
    let mut user = false;
    for ns in &list {
        let flag = match ns.typ() {
            LinuxNamespaceType::User => {
                if ns.path().is_some() {
                    bail!("linux.namespaces: joining a user namespace (path) is not supported");
                }
                user = true;
                continue;
            }
            LinuxNamespaceType::Mount => {
                if ns.path().is_some() {
                    bail!("linux.namespaces: joining a mount namespace (path) is not supported");
                }
                mount = true;
                continue;
            }
            LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            other => bail!(
                "linux.namespaces: type {:?} is not supported by strata-runtime yet",
                other.to_string()
            ),
        };
        match ns.path() {
            Some(p) => plan.join.push((flag, p.clone())),
            None => plan.unshare |= flag,
        }
    }
    if !mount {
        bail!("linux.namespaces: a new mount namespace is required");
    }
    let network = if plan.unshare.contains(CloneFlags::CLONE_NEWNET) {
        Network::None
    } else {
        Network::Host
    };
    Ok((plan, network, user))
}

/// `process.capabilities` by number (a missing set is empty).
fn capabilities(raw: &Value) -> Result<CapSets> {
    let caps = raw.pointer("/process/capabilities");
    let set = |name: &str| -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for v in caps
            .and_then(|c| c.get(name))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = v.as_str().unwrap_or_default();
            out.push(names::capability(s).with_context(|| format!("process.capabilities.{name}"))?);
        }
        Ok(out)
    };
    Ok(CapSets {
        bounding: set("bounding")?,
        effective: set("effective")?,
        permitted: set("permitted")?,
        inheritable: set("inheritable")?,
    })
}

/// `linux.rootfsPropagation` → the flags for the container's `/`.
fn rootfs_propagation(value: Option<&str>) -> Result<MsFlags> {
    Ok(match value {
        None | Some("") => MsFlags::empty(),
        Some("shared") => MsFlags::MS_SHARED,
        Some("rshared") => MsFlags::MS_SHARED | MsFlags::MS_REC,
        Some("slave") => MsFlags::MS_SLAVE,
        Some("rslave") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some("private") => MsFlags::MS_PRIVATE,
        Some("rprivate") => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        Some("unbindable") => MsFlags::MS_UNBINDABLE,
        Some("runbindable") => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        Some(other) => bail!("linux.rootfsPropagation {other:?} is no propagation type"),
    })
}

/// `linux.sysctl` → keys and values, each key one the container's new namespaces own
/// (`net.*` with a new network namespace; `kernel.shm*`, `kernel.msg*`, `kernel.sem`,
/// `fs.mqueue.*` with a new ipc namespace; `kernel.hostname`/`domainname` with a new
/// uts namespace), as runc checks them.
fn sysctls(spec: &Spec, ns: &NsPlan) -> Result<Vec<(String, String)>> {
    let map = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().clone())
        .unwrap_or_default();
    let mut keys: Vec<_> = map.into_iter().collect();
    keys.sort();
    for (key, _) in &keys {
        let valid = !key.is_empty()
            && key.split('.').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
            });
        if !valid {
            bail!("linux.sysctl: invalid key {key:?}");
        }
        let new = |f: CloneFlags| ns.unshare.contains(f);
        let owned = (key.starts_with("net.") && new(CloneFlags::CLONE_NEWNET))
            || ((key.starts_with("kernel.shm")
                || key.starts_with("kernel.msg")
                || key == "kernel.sem"
                || key.starts_with("fs.mqueue."))
                && new(CloneFlags::CLONE_NEWIPC))
            || ((key == "kernel.hostname" || key == "kernel.domainname")
                && new(CloneFlags::CLONE_NEWUTS));
        if !owned {
            bail!(
                "linux.sysctl: {key} is not namespaced by the container's new namespaces \
                 (it would change the host)"
            );
        }
    }
    Ok(keys)
}

/// `linux.resources.devices` → device cgroup rules (type `a` and access `rwm` when
/// left out).
fn device_rules(raw: &Value) -> Result<Vec<DeviceRule>> {
    let list = raw
        .pointer("/linux/resources/devices")
        .and_then(Value::as_array);
    let mut out = Vec::new();
    for (i, d) in list.into_iter().flatten().enumerate() {
        let at = || format!("linux.resources.devices[{i}]");
        let allow = d
            .get("allow")
            .and_then(Value::as_bool)
            .with_context(|| format!("{}.allow is missing", at()))?;
        let kind = d.get("type").and_then(Value::as_str).unwrap_or("a");
        let mut chars = kind.chars();
        let (Some(kind), None) = (chars.next(), chars.next()) else {
            bail!("{}.type {kind:?}: expected a, c or b", at());
        };
        let access = d.get("access").and_then(Value::as_str).unwrap_or("rwm");
        let major = d.get("major").and_then(Value::as_i64);
        let minor = d.get("minor").and_then(Value::as_i64);
        out.push(DeviceRule::new(allow, kind, major, minor, access).with_context(at)?);
    }
    Ok(out)
}

/// `linux.resources` of `raw` (a config.json, or the object `update` builds) → the
/// core's limits, after the same refusals as config.json's resources get.
pub fn resource_limits(raw: &Value) -> Result<Limits> {
    if let Some(r) = raw.pointer("/linux/resources") {
        check_resources(r)?;
        if r.get("devices").is_some_and(non_empty) {
            bail!("device rules cannot be updated");
        }
    }
    limits(raw)
}

/// `linux.resources` → the core's limits (cpu quota/period as a number of CPUs).
fn limits(raw: &Value) -> Result<Limits> {
    let get = |p: &str| raw.pointer(p).and_then(Value::as_i64);
    let memory = match get("/linux/resources/memory/limit") {
        Some(m) if m > 0 => Some(m as u64),
        Some(-1) | None => None,
        Some(m) => bail!("linux.resources.memory.limit {m} is not a positive size"),
    };
    // memory+swap, as runc: -1 no limit on swap; not below the memory limit.
    let memory_swap = match (get("/linux/resources/memory/swap"), memory) {
        (None | Some(0), _) => None,
        (Some(-1), _) => Some(u64::MAX),
        (Some(s), Some(m)) if s > 0 && s as u64 >= m => Some(s as u64),
        (Some(s), None) if s > 0 => bail!(
            "linux.resources.memory.swap {s} needs linux.resources.memory.limit (it counts memory and swap together)"
        ),
        (Some(s), _) => bail!(
            "linux.resources.memory.swap {s} is below linux.resources.memory.limit (it counts memory and swap together)"
        ),
    };
    let cpus = match get("/linux/resources/cpu/quota") {
        Some(q) if q > 0 => {
            let period = get("/linux/resources/cpu/period").unwrap_or(100_000);
            if period <= 0 {
                bail!("linux.resources.cpu.period {period} is not positive");
            }
            Some(q as f64 / period as f64)
        }
        Some(-1) | None => None,
        Some(q) => bail!("linux.resources.cpu.quota {q} is not positive"),
    };
    let pids = match get("/linux/resources/pids/limit") {
        Some(p) if p > 0 => Some(p as u64),
        Some(_) | None => None,
    };
    // 0 (or none) leaves the weight as the parent gives it, as runc does.
    let cpu_shares = match raw.pointer("/linux/resources/cpu/shares") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(0) => None,
            Some(s) => Some(s),
            None => bail!("linux.resources.cpu.shares {v} is not a count of shares"),
        },
    };
    Ok(Limits {
        memory,
        memory_swap,
        cpus,
        cpu_shares,
        pids,
    })
}

/// One OCI mount → the core's [`MountSpec`]: flags from the options runc knows,
/// propagation apart, the rest passed to the file system as data.
pub fn mount(
    destination: &str,
    typ: Option<&str>,
    source: Option<&Path>,
    options: &[String],
) -> Result<MountSpec> {
    if !destination.starts_with('/') {
        bail!("destination {destination:?} is not absolute");
    }
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut bind = match typ {
        Some("bind") => Some(Bind::Single),
        _ => None,
    };
    let mut data = Vec::new();
    for o in options {
        let o = o.as_str();
        let (set, clear) = match o {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                bind.get_or_insert(Bind::Single);
                continue;
            }
            "rbind" => {
                bind = Some(Bind::Recursive);
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let kind = match o.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                propagation = kind;
                if o.starts_with('r') {
                    propagation |= MsFlags::MS_REC;
                }
                continue;
            }
            "tmpcopyup" | "idmap" | "ridmap" | "copyup" | "nocopyup" | "remount" => {
                bail!("mount option {o:?} is not supported by strata-runtime yet")
            }
            _ if o.starts_with('r') && is_recursive_attr(o) => {
                bail!("mount option {o:?} is not supported by strata-runtime yet")
            }
            _ => {
                data.push(o.to_string());
                continue;
            }
        };
        flags = (flags | set) - clear;
    }
    let (fstype, source) = match (bind, typ) {
        (Some(_), _) => (None, source.map(Path::to_path_buf)),
        // A cgroup mount is the container's view of the v2 hierarchy (rooted at its
        // cgroup namespace), on hybrid hosts too.
        (None, Some("cgroup")) | (None, Some("cgroup2")) => {
            (Some("cgroup2".to_string()), Some(PathBuf::from("cgroup2")))
        }
        (None, Some(t)) => (
            Some(t.to_string()),
            Some(
                source
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(t)),
            ),
        ),
        (None, None) => bail!("no type and not a bind mount"),
    };
    if bind.is_some() && source.is_none() {
        bail!("a bind mount needs a source");
    }
    if bind.is_some() && !data.is_empty() {
        bail!("options {:?} mean nothing to a bind mount", data.join(","));
    }
    Ok(MountSpec {
        destination: PathBuf::from(destination),
        source,
        fstype,
        flags,
        data: (!data.is_empty()).then(|| data.join(",")),
        bind,
        propagation,
    })
}

/// runc's recursive mount attributes (`rro`, `rnosuid`, ...), which need mount_setattr.
fn is_recursive_attr(o: &str) -> bool {
    matches!(
        o,
        "rro"
            | "rrw"
            | "rnosuid"
            | "rsuid"
            | "rnodev"
            | "rdev"
            | "rnoexec"
            | "rexec"
            | "rnoatime"
            | "ratime"
            | "rnodiratime"
            | "rdiratime"
            | "rrelatime"
            | "rnorelatime"
            | "rstrictatime"
            | "rnostrictatime"
            | "rnosymfollow"
            | "rsymfollow"
    )
}

#[cfg(test)]
mod tests;
