//! `update [--memory N] [--cpu-quota N [--cpu-period N]] [--pids-limit N] [-r FILE] ID`:
//! changes a container's limits in its cgroup; `-r` takes a `linux.resources` object
//! (JSON, `-` for stdin) checked as config.json's. Other options are refused by name.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::oci::config;
use crate::oci::state::{StateDir, Status};
use crate::runtime::cgroups::Cgroup;

/// Updates container `a.container_id`.
pub fn update(root: &Path, a: &liboci_cli::Update) -> Result<()> {
    for (set, name) in [
        (a.blkio_weight.is_some(), "--blkio-weight"),
        (a.cpu_rt_period.is_some(), "--cpu-rt-period"),
        (a.cpu_rt_runtime.is_some(), "--cpu-rt-runtime"),
        (a.cpu_share.is_some(), "--cpu-share"),
        (a.cpuset_cpus.is_some(), "--cpuset-cpus"),
        (a.cpuset_mems.is_some(), "--cpuset-mems"),
        (a.memory_reservation.is_some(), "--memory-reservation"),
        (a.memory_swap.is_some(), "--memory-swap"),
        (a.l3_cache_schema.is_some(), "--l3-cache-schema"),
        (a.mem_bw_schema.is_some(), "--mem-bw-schema"),
    ] {
        if set {
            bail!("update {name} is not supported by strata-runtime yet");
        }
    }
    let mut resources = match &a.resources {
        Some(p) => {
            let mut text = String::new();
            if p.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the resources from stdin")?;
            } else {
                text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
            }
            serde_json::from_str(&text).context("parsing the resources")?
        }
        None => json!({}),
    };
    let set = |r: &mut Value, section: &str, key: &str, v: Option<Value>| {
        if let (Some(v), Some(obj)) = (v, r.as_object_mut()) {
            let s = obj.entry(section).or_insert_with(|| json!({}));
            s[key] = v;
        }
    };
    set(&mut resources, "memory", "limit", a.memory.map(Value::from));
    set(&mut resources, "cpu", "quota", a.cpu_quota.map(Value::from));
    set(
        &mut resources,
        "cpu",
        "period",
        a.cpu_period.map(Value::from),
    );
    set(
        &mut resources,
        "pids",
        "limit",
        a.pids_limit.map(Value::from),
    );
    let limits = config::resource_limits(&json!({"linux": {"resources": resources}}))?;
    let dir = StateDir::new(root, &a.container_id)?;
    let _lock = dir.lock()?;
    let record = dir.load()?;
    if record.status() == Status::Stopped {
        bail!("container {} is not running", a.container_id);
    }
    let cg = Cgroup::from_paths(&record.cgroup_paths)
        .with_context(|| format!("container {} has no cgroup", a.container_id))?;
    cg.update(&limits)
}
