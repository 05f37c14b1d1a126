//! `strata run -t` under a real terminal: the test opens a pty pair, runs the launcher
//! on its slave as a session leader (as a shell would), and drives the master.

mod common;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::*;
use nix::pty::{Winsize, openpty};

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Sets the window size of the terminal on `fd` (the kernel then sends SIGWINCH to the
/// slave's foreground process group).
fn set_winsize(fd: &OwnedFd, ws: &Winsize) {
    // SAFETY: TIOCSWINSZ reads a winsize we own.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const Winsize) };
    assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
}

/// What the test does to the outer terminal once the output shows a marker.
enum Action {
    /// Resize the terminal.
    Resize(Winsize),
    /// Type these bytes.
    Type(&'static str),
}

/// Runs `strata --root <demo store> ARGS` on a new terminal of size `initial`. Each
/// time the output so far contains the next `(marker, action)` pair's marker, the
/// action is done on the outer terminal. Returns the output (CR LF as LF) and the exit
/// code.
fn run_on_pty(args: &[&str], initial: Winsize, actions: &[(&str, Action)]) -> (String, i32) {
    let pty = openpty(Some(&initial), None).expect("openpty");
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup of the pty slave"));
    let mut cmd = Command::new(strata());
    cmd.arg("--root")
        .arg(demo_store())
        .args(args)
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave));
    // SAFETY: setsid and ioctl are async-signal-safe; run between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawning strata");
    drop(cmd);
    drop(pty.slave);
    let master = pty.master;
    nix::fcntl::fcntl(
        master.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .expect("O_NONBLOCK on the master");
    let mut out = Vec::new();
    let mut pending = actions.iter();
    let mut next = pending.next();
    let mut exited = None;
    loop {
        let mut fds = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(&master, &mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // EAGAIN: nothing more for now; EIO: every slave fd is closed.
                Err(_) => break,
            }
        }
        if let Some((marker, action)) = next
            && String::from_utf8_lossy(&out).contains(marker)
        {
            match action {
                Action::Resize(size) => set_winsize(&master, size),
                Action::Type(text) => {
                    let n = nix::unistd::write(&master, text.as_bytes()).expect("typing");
                    assert_eq!(n, text.len());
                }
            }
            next = pending.next();
        }
        if exited.is_some() {
            break;
        }
        // One more read after the exit collects what was still buffered.
        exited = child.try_wait().expect("waiting for strata");
    }
    let code = exited.and_then(|s| s.code()).unwrap_or(-1);
    let text = String::from_utf8_lossy(&out).replace("\r\n", "\n");
    (text, code)
}

/// The container script: prints its terminal and size, then waits (bounded) until the
/// size changes and prints it again.
const TTY_SCRIPT: &str = "tty; stty size; echo ready; i=0; \
    while [ \"$(stty size)\" = '33 101' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
    stty size";

#[test]
fn tty_size_and_resize() {
    if skip_unless_root() {
        return;
    }
    for extra in [&[][..], &["--init"][..]] {
        let mut args = vec!["run", "--rm", "-t", "--driver", "kernel"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["demo", "/bin/sh", "-c", TTY_SCRIPT]);
        let resize = [("ready", Action::Resize(winsize(40, 120)))];
        let (out, code) = run_on_pty(&args, winsize(33, 101), &resize);
        assert_eq!(code, 0, "{extra:?}: {out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{extra:?}: {out}");
        assert!(
            lines[0].starts_with("/dev/pts/"),
            "{extra:?}: tty is {:?}: {out}",
            lines[0]
        );
        assert_eq!(
            &lines[1..],
            ["33 101", "ready", "40 120"],
            "{extra:?}: {out}"
        );
    }
}

#[test]
fn tty_input_owner_and_exit_code() {
    if skip_unless_root() {
        return;
    }
    // -i -t: typed input reaches the command; the terminal is the container's console.
    let script =
        "[ /dev/console -ef \"$(tty)\" ] && echo console-ok; echo ask; read x; echo got-$x; exit 5";
    let args = [
        "run", "--rm", "-i", "-t", "--driver", "kernel", "demo", "/bin/sh", "-c", script,
    ];
    let (out, code) = run_on_pty(&args, winsize(24, 80), &[("ask", Action::Type("hello\n"))]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("console-ok\n"), "{out}");
    assert!(out.contains("got-hello\n"), "{out}");
    // -u: the terminal belongs to the user the command runs as.
    let args = [
        "run",
        "--rm",
        "-t",
        "-u",
        "1000:1000",
        "--driver",
        "kernel",
        "demo",
        "/bin/sh",
        "-c",
        "stat -c %u:%g \"$(tty)\"",
    ];
    let (out, code) = run_on_pty(&args, winsize(24, 80), &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "1000:1000", "{out}");
    // -t without -i: what is typed does not reach the container's terminal (which would
    // echo it), as in podman.
    let script = "echo ask; sleep 0.5; echo end";
    let args = [
        "run", "--rm", "-t", "--driver", "kernel", "demo", "/bin/sh", "-c", script,
    ];
    let (out, code) = run_on_pty(&args, winsize(24, 80), &[("ask", Action::Type("typed\n"))]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "ask\nend\n", "{out}");
}
