//! The container runtime, one module per step (as youki's libcontainer splits it):
//! namespaces, id maps, cgroups, the union mount, rootfs / devices / mounts, pivot_root,
//! capabilities, PID 1 signal forwarding and reaping, pty.
//!
//! Process layout of one `strata run`:
//! * the launcher (host namespaces): creates the cgroup, writes uid/gid maps, forwards
//!   signals, relays the pty, cleans up;
//! * the setup process: user (rootless) + mount namespaces, mounts the union (and keeps
//!   a FUSE daemon as its child), unshares pid/uts/ipc/net/cgroup, waits while the
//!   launcher starts the network helper (pasta, slirp4netns), forks the command;
//! * the command, PID 1 of the new pid namespace: builds the rootfs, pivots, drops
//!   privileges, execs; with `--init`, that process stays as PID 1 (module [`pid1`])
//!   and the command is its child;
//! * a guard that outlives a killed launcher and removes the cgroup (and with `--rm`
//!   the container) once the container's processes are gone.
//!
//! A detached `strata` container (`run -d`, `create`/`start`) has a monitor process as
//! its launcher (`crate::lifecycle::monitor`); after `strata create` its init waits on
//! an exec fifo before exec, until `start`.
//!
//! An OCI `create` (module [`created`]) runs the same setup process and init on a
//! [`RunSpec`] with no union, an exec fifo and `outlives_setup`: the setup process
//! exits once the init is forked, the init waits on the fifo before exec, and no
//! launcher stays.

pub mod caps;
pub mod cgroups;
pub mod clock;
pub mod created;
pub mod credentials;
pub mod daemon_wait;
pub mod devices;
pub mod exec_fifo;
pub mod guard;
pub mod hooks;
pub mod idmap;
pub mod init;
pub mod join;
pub mod launch;
pub mod mounts;
pub mod namespaces;
pub mod net;
pub mod network;
pub mod paths;
pub mod pid1;
pub mod procfs;
pub mod pty;
pub mod reap;
pub mod rootfs;
pub mod seccomp;
pub mod setup;
pub mod spec;
pub mod state;
pub mod sync;
pub mod syscall;
pub mod union;

use std::path::PathBuf;

use spec::{Driver, Limits, Network, Volume};

/// Exit status for an error of strata itself.
pub const EXIT_STRATA_ERROR: i32 = 125;
/// Exit status when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Everything needed to start one container, resolved by `strata run`.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Container id (names the cgroup).
    pub id: String,
    /// Container name (for messages).
    pub name: String,
    /// The container's directory in the store.
    pub dir: PathBuf,
    /// The union to mount; `None` when `merged` is a plain directory already holding
    /// the rootfs (an OCI bundle's `root.path`: the engine mounted it).
    pub union: Option<union::UnionDirs>,
    /// Where to mount it (the container's rootfs).
    pub merged: PathBuf,
    /// Kernel overlayfs or FUSE.
    pub driver: Driver,
    /// Command and arguments.
    pub argv: Vec<String>,
    /// `K=V` environment.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub cwd: String,
    /// `-u` / image User, resolved inside the rootfs.
    pub user: Option<String>,
    /// UTS hostname (empty: left as it is).
    pub hostname: String,
    /// Namespaces made new or joined by the setup process.
    pub namespaces: namespaces::NsPlan,
    /// An explicit mount list in place of the standard `/proc`, `/dev`, `/sys`.
    pub mounts: Option<Vec<mounts::MountSpec>>,
    /// Paths masked after pivot_root.
    pub masked_paths: Vec<String>,
    /// Paths made read-only after pivot_root.
    pub readonly_paths: Vec<String>,
    /// Make the rootfs the root without pivot_root (`--no-pivot`): moved onto `/`
    /// (`MS_MOVE`) and chrooted into, as runc's `--no-pivot` does; the old root stays
    /// mounted beneath, out of reach of paths.
    pub no_pivot: bool,
    /// Remount the rootfs read-only after pivot_root.
    pub rootfs_readonly: bool,
    /// The propagation the container's `/` gets after pivot_root (`MS_SHARED`,
    /// `MS_SLAVE`, `MS_PRIVATE` or `MS_UNBINDABLE`, with `MS_REC` for the recursive
    /// forms); empty: left private, as the setup process made it.
    pub rootfs_propagation: nix::mount::MsFlags,
    /// The capability sets.
    pub caps: caps::CapSets,
    /// Supplementary groups of the command, besides its gid.
    pub additional_gids: Vec<u32>,
    /// Resource limits of the command.
    pub rlimits: Vec<spec::Rlimit>,
    /// Set no_new_privs before exec.
    pub no_new_privs: bool,
    /// The command's umask (`None`: inherited).
    pub umask: Option<u32>,
    /// Namespaced sysctls written in the container (`/proc/sys/KEY`), checked by the
    /// caller to be ones the container's namespaces own.
    pub sysctl: Vec<(String, String)>,
    /// Give the container a session keyring of its own, named after its id (OCI
    /// runtimes do unless `--no-new-keyring`).
    pub new_keyring: bool,
    /// An OCI container's `--preserve-fds N`: only stdio and the N descriptors after
    /// it reach the command; `None` passes on whatever is not close-on-exec.
    pub preserve_fds: Option<u32>,
    /// Hooks run while the container is created and started (OCI).
    pub hooks: hooks::CreationHooks,
    /// The init's `oom_score_adj`.
    pub oom_score_adj: Option<i32>,
    /// A seccomp filter installed just before exec.
    pub seccomp: Option<seccomp::Plan>,
    /// A created container: its init waits on this fifo before exec (until `start`).
    pub exec_fifo: Option<PathBuf>,
    /// The init outlives the setup process (an OCI `create`): the setup process exits
    /// once it is forked, the init reports ready on its pipe and does not die with its
    /// parent. Else (`strata`) the setup process waits for it and unmounts.
    pub outlives_setup: bool,
    /// Network mode.
    pub network: Network,
    /// The network helper (pasta, slirp4netns) the launcher starts for the
    /// container's network namespace before the command runs.
    pub net_helper: Option<network::HelperPlan>,
    /// cgroup limits.
    pub limits: Limits,
    /// Host bind mounts.
    pub volumes: Vec<Volume>,
    /// Allocate a pty.
    pub tty: bool,
    /// Keep stdin attached.
    pub interactive: bool,
    /// Run a minimal init as PID 1 that starts the command, forwards signals and
    /// reaps zombies (`--init`).
    pub init: bool,
    /// Rootless: the id mapping of the user namespace.
    pub idmap: Option<idmap::IdMapping>,
    /// The caller is root of a user namespace that is not the host's (rootless podman
    /// runs its runtime so): no user namespace is made, but the container is set up as
    /// a rootless one (devices bound from the host, not made).
    pub in_userns: bool,
    /// Remove the container after exit (`--rm`).
    pub remove: bool,
    /// Run by a monitor (`strata run -d`, `start`): recorded in the state.
    pub detached: bool,
    /// The store root (for `--rm` by the guard).
    pub store_root: PathBuf,
}

impl RunSpec {
    /// Set up without real root's powers: in a user namespace made for it, or
    /// already in one.
    pub fn rootless(&self) -> bool {
        self.idmap.is_some() || self.in_userns
    }
}
