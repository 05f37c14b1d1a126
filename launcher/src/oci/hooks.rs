//! OCI hooks run by the runtime in its own namespaces: `poststart` (after `start`) and
//! `poststop` (in `delete`), each with the container's state JSON on stdin. The hooks
//! that run during creation (`prestart`, `createRuntime`, `createContainer`,
//! `startContainer`) are refused by `config`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Absolute path of the program.
    pub path: PathBuf,
    /// Its argv (argv[0] included), `[path]` when absent.
    pub args: Vec<String>,
    /// Its environment (`K=V`).
    pub env: Vec<String>,
    /// Seconds it may run.
    pub timeout: Option<u64>,
}

/// The hooks of a container this runtime runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    /// After `start`.
    pub poststart: Vec<Hook>,
    /// In `delete`, after the container is gone.
    pub poststop: Vec<Hook>,
}

/// Reads config.json's `hooks`, refusing the kinds not run.
pub fn from_config(raw: &Value) -> Result<Hooks> {
    let Some(h) = raw.get("hooks") else {
        return Ok(Hooks::default());
    };
    super::config::allow_only(h, "hooks", &["poststart", "poststop"])?;
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
    Ok(Hooks {
        poststart: list("poststart")?,
        poststop: list("poststop")?,
    })
}

/// Runs `hooks` in order with `state` on stdin; stops at the first failure.
pub fn run(hooks: &[Hook], state: &Value) -> Result<()> {
    for h in hooks {
        run_one(h, state).with_context(|| format!("hook {}", h.path.display()))?;
    }
    Ok(())
}

fn run_one(h: &Hook, state: &Value) -> Result<()> {
    let mut cmd = Command::new(&h.path);
    if let Some(arg0) = h.args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
    }
    cmd.args(h.args.iter().skip(1))
        .env_clear()
        .envs(h.env.iter().filter_map(|e| e.split_once('=')))
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().context("starting it")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let deadline = h.timeout.map(|t| Instant::now() + Duration::from_secs(t));
    loop {
        if let Some(status) = child.try_wait().context("waiting for it")? {
            if !status.success() {
                bail!("it failed ({status})");
            }
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "it ran past its timeout of {}s",
                h.timeout.unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_read_and_the_creation_ones_refused() -> Result<()> {
        let raw = serde_json::json!({"hooks": {
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "true"], "timeout": 5}],
            "poststop": [{"path": "/bin/true"}]
        }});
        let h = from_config(&raw)?;
        assert_eq!(h.poststart[0].args, vec!["sh", "-c", "true"]);
        assert_eq!(h.poststop[0].args, vec!["/bin/true"]);
        run(&h.poststart, &serde_json::json!({}))?;
        let raw = serde_json::json!({"hooks": {"createRuntime": [{"path": "/bin/true"}]}});
        let err = from_config(&raw).map(|_| ()).unwrap_err();
        assert!(
            format!("{err:#}").contains("hooks.createRuntime"),
            "{err:#}"
        );
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
