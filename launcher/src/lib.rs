//! strata's launcher: the CLI's commands and the container runtime (namespaces, uid/gid
//! maps, cgroups, rootfs, PID 1 duties) on top of `store` and `stratafs`.

pub mod cmd_image;
pub mod cmd_lifecycle;
pub mod cmd_registry;
pub mod cmd_run;
pub mod lifecycle;
pub mod oci;
pub mod run_config;
pub mod run_spec;
pub mod runtime;
pub mod sys;
