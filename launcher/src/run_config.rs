//! What `strata run` runs: argv, environment, working directory and user, from the
//! image's config and the command line, with docker's precedence. A pure function so
//! the rules are tested without a store or a container.

use anyhow::{Result, bail};
use store::ImageRunConfig;

use crate::runtime::spec;

/// The command-line side of [`resolve`]: what the user asked for, already read and
/// checked (`-e`/`--env-file` expanded, `-w` absolute).
#[derive(Debug, Default, Clone)]
pub struct RunFlags<'a> {
    /// The image as named on the command line (for the error when nothing can run).
    pub image: &'a str,
    /// The command after the image name (replaces `Cmd`, not `Entrypoint`).
    pub command: &'a [String],
    /// `--env-file` then `-e` entries, `KEY=VALUE`; they override the image's.
    pub env: &'a [String],
    /// `-w`.
    pub workdir: Option<&'a str>,
    /// `-u` (`UID[:GID]` or `NAME[:GROUP]`, resolved later in the container).
    pub user: Option<&'a str>,
    /// The launcher's `TERM`, passed on with `-t` only.
    pub term: Option<&'a str>,
}

/// What the container process runs, before the user is looked up in its rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The environment, `KEY=VALUE`, each key once.
    pub env: Vec<String>,
    /// The working directory inside the container.
    pub cwd: String,
    /// The user spec, if the flags or the image name one.
    pub user: Option<String>,
}

/// Resolves what to run: `Entrypoint` followed by the command, or by `Cmd` without
/// one; the environment from the default `PATH`, `container=strata`, `TERM` (with
/// `-t`), the image's `Env` and the flags, later ones winning; `-w`, else the image's
/// `WorkingDir`, else `/`; `-u`, else the image's `User`.
pub fn resolve(cfg: &ImageRunConfig, flags: &RunFlags<'_>) -> Result<RunConfig> {
    let tail = if flags.command.is_empty() {
        &cfg.cmd
    } else {
        flags.command
    };
    let argv: Vec<String> = cfg.entrypoint.iter().chain(tail).cloned().collect();
    if argv.is_empty() {
        bail!(
            "no command given and image {} has no Entrypoint or Cmd",
            flags.image
        );
    }
    let default_path = vec![spec::DEFAULT_PATH.to_string()];
    let host_term: Vec<String> = flags
        .term
        .map(|t| format!("TERM={t}"))
        .into_iter()
        .collect();
    let container_marker = vec!["container=strata".to_string()];
    let env = spec::merge_env(&[
        &default_path,
        &container_marker,
        &host_term,
        &cfg.env,
        flags.env,
    ]);
    let cwd = flags
        .workdir
        .map(str::to_string)
        .or_else(|| cfg.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    let user = flags
        .user
        .map(str::to_string)
        .or_else(|| cfg.user.clone().filter(|u| !u.is_empty()));
    Ok(RunConfig {
        argv,
        env,
        cwd,
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageRunConfig {
        ImageRunConfig {
            entrypoint: strings(entrypoint),
            cmd: strings(cmd),
            env: strings(&["PATH=/img/bin", "LANG=C", "A=image"]),
            working_dir: Some("/srv".into()),
            user: Some("app".into()),
        }
    }

    fn argv(cfg: &ImageRunConfig, command: &[&str]) -> Result<Vec<String>> {
        let command = strings(command);
        let flags = RunFlags {
            image: "img",
            command: &command,
            ..RunFlags::default()
        };
        resolve(cfg, &flags).map(|r| r.argv)
    }

    #[test]
    fn entrypoint_and_cmd() {
        let both = image(&["/ep", "-x"], &["default"]);
        assert_eq!(
            argv(&both, &[]).ok(),
            Some(strings(&["/ep", "-x", "default"]))
        );
        assert_eq!(
            argv(&both, &["mine", "1"]).ok(),
            Some(strings(&["/ep", "-x", "mine", "1"]))
        );
        let cmd_only = image(&[], &["sh"]);
        assert_eq!(argv(&cmd_only, &[]).ok(), Some(strings(&["sh"])));
        assert_eq!(argv(&cmd_only, &["ls"]).ok(), Some(strings(&["ls"])));
        let ep_only = image(&["/ep"], &[]);
        assert_eq!(argv(&ep_only, &[]).ok(), Some(strings(&["/ep"])));
        let neither = image(&[], &[]);
        assert_eq!(argv(&neither, &["ls"]).ok(), Some(strings(&["ls"])));
        let err = argv(&neither, &[]).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("no command given and image img has no Entrypoint or Cmd")
        );
    }

    #[test]
    fn env_flags_override_the_image() {
        let cfg = image(&[], &["sh"]);
        let env = strings(&["A=flag", "NEW=1"]);
        let flags = RunFlags {
            image: "img",
            env: &env,
            term: Some("xterm"),
            ..RunFlags::default()
        };
        let r = resolve(&cfg, &flags).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.env,
            strings(&[
                "PATH=/img/bin",
                "container=strata",
                "TERM=xterm",
                "LANG=C",
                "A=flag",
                "NEW=1"
            ])
        );
        let plain =
            resolve(&image(&[], &["sh"]), &RunFlags::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            plain.env,
            strings(&["PATH=/img/bin", "container=strata", "LANG=C", "A=image"])
        );
    }

    #[test]
    fn workdir() {
        let mut cfg = image(&[], &["sh"]);
        let flags = RunFlags {
            workdir: Some("/tmp"),
            ..RunFlags::default()
        };
        let cwd = |cfg: &ImageRunConfig, f: &RunFlags<'_>| resolve(cfg, f).map(|r| r.cwd).ok();
        assert_eq!(cwd(&cfg, &flags).as_deref(), Some("/tmp"));
        assert_eq!(cwd(&cfg, &RunFlags::default()).as_deref(), Some("/srv"));
        cfg.working_dir = Some(String::new());
        assert_eq!(cwd(&cfg, &RunFlags::default()).as_deref(), Some("/"));
        cfg.working_dir = None;
        assert_eq!(cwd(&cfg, &RunFlags::default()).as_deref(), Some("/"));
    }

    #[test]
    fn user() {
        let mut cfg = image(&[], &["sh"]);
        let user = |cfg: &ImageRunConfig, u: Option<&str>| {
            let flags = RunFlags {
                user: u,
                ..RunFlags::default()
            };
            resolve(cfg, &flags).ok().and_then(|r| r.user)
        };
        assert_eq!(user(&cfg, Some("nobody")).as_deref(), Some("nobody"));
        assert_eq!(user(&cfg, Some("1000:100")).as_deref(), Some("1000:100"));
        assert_eq!(user(&cfg, None).as_deref(), Some("app"));
        cfg.user = Some(String::new());
        assert_eq!(user(&cfg, None), None);
        assert_eq!(user(&cfg, Some("0")).as_deref(), Some("0"));
    }
}
