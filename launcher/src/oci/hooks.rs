//! OCI hooks: `poststart` (run by `start`) and `poststop` (by `delete`) here, each with
//! the container's state JSON on stdin; the creation ones (`prestart`,
//! `createRuntime`, `createContainer`, `startContainer`) go to the core
//! (`crate::runtime::hooks`), which runs them at their points of `create`/`start`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runtime::hooks::CreationHooks;
pub use crate::runtime::hooks::Hook;

/// The hooks of a container this runtime runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    /// After `start`.
    pub poststart: Vec<Hook>,
    /// In `delete`, after the container is gone.
    pub poststop: Vec<Hook>,
}

/// Reads config.json's `hooks`: those run by `start` and `delete`, and the creation
/// ones (`state` is what they get on stdin, its pid filled in when they run).
pub fn from_config(raw: &Value, state: Value) -> Result<(Hooks, CreationHooks)> {
    let Some(h) = raw.get("hooks") else {
        return Ok((Hooks::default(), CreationHooks::default()));
    };
    super::config::allow_only(
        h,
        "hooks",
        &[
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ],
    )?;
    let list = |kind: &str| -> Result<Vec<Hook>> {
        let mut out = Vec::new();
        for (i, v) in h
            .get(kind)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("hooks.{kind}[{i}]");
            super::config::allow_only(v, &at, &["path", "args", "env", "timeout"])?;
            let path = PathBuf::from(
                v.get("path")
                    .and_then(Value::as_str)
                    .with_context(|| format!("{at}.path is missing"))?,
            );
            if !path.is_absolute() {
                bail!("{at}.path {} is not absolute", path.display());
            }
            let strings = |k: &str| -> Vec<String> {
                v.get(k)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            };
            let mut args = strings("args");
            if args.is_empty() {
                args.push(path.to_string_lossy().into_owned());
            }
            let timeout = match v.get("timeout").map(Value::as_i64) {
                None => None,
                Some(Some(t)) if t > 0 => Some(t as u64),
                Some(_) => bail!("{at}.timeout must be a positive number of seconds"),
            };
            out.push(Hook {
                path,
                args,
                env: strings("env"),
                timeout,
            });
        }
        Ok(out)
    };
    let mut create_runtime = list("prestart")?;
    create_runtime.extend(list("createRuntime")?);
    Ok((
        Hooks {
            poststart: list("poststart")?,
            poststop: list("poststop")?,
        },
        CreationHooks {
            create_runtime,
            create_container: list("createContainer")?,
            start_container: list("startContainer")?,
            state,
        },
    ))
}

/// Runs `hooks` in order with `state` on stdin; stops at the first failure.
pub fn run(hooks: &[Hook], state: &Value) -> Result<()> {
    crate::runtime::hooks::run(hooks, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_read_and_unknown_kinds_refused() -> Result<()> {
        let raw = serde_json::json!({"hooks": {
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "true"], "timeout": 5}],
            "poststop": [{"path": "/bin/true"}],
            "prestart": [{"path": "/bin/true"}],
            "createRuntime": [{"path": "/bin/false"}]
        }});
        let (h, c) = from_config(&raw, serde_json::json!({}))?;
        assert_eq!(h.poststart[0].args, vec!["sh", "-c", "true"]);
        assert_eq!(h.poststop[0].args, vec!["/bin/true"]);
        assert_eq!(c.create_runtime.len(), 2);
        run(&h.poststart, &serde_json::json!({}))?;
        assert!(run(&c.create_runtime, &serde_json::json!({})).is_err());
        let raw = serde_json::json!({"hooks": {"onBoot": [{"path": "/bin/true"}]}});
        let err = from_config(&raw, serde_json::json!({}))
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err:#}").contains("hooks.onBoot"), "{err:#}");
        let slow = Hook {
            path: "/bin/sleep".into(),
            args: vec!["sleep".into(), "5".into()],
            env: vec![],
            timeout: Some(1),
        };
        assert!(run(&[slow], &serde_json::json!({})).is_err());
        Ok(())
    }
}
