//! `strata run` with a network (root; one case as an unprivileged user): published
//! TCP and UDP ports answering on the host, the host's loopback reached through the
//! gateway, names resolved by a DNS responder this test runs on the host's loopback
//! (named with `--dns`, and as the host's only resolver through pasta's DNS forward),
//! `--add-host`/`--dns-search` in the container's files, port ranges and ports without
//! a host port, slirp4netns, and a host port
//! in use refused with one line and exit 125, leaving nothing behind. Needs pasta
//! (package passt) and slirp4netns (`scripts/deps` installs them).

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{
    demo_store, ensure_user, have_tools, run_strata, show, skip_unless_root, stdout, strata,
    strata_as, until,
};

fn ready() -> bool {
    !skip_unless_root() && have_tools(&["pasta", "slirp4netns"])
}

/// A TCP port nothing listens on now.
fn free_tcp_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A UDP port nothing uses now.
fn free_udp_port() -> u16 {
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// `GET /hostname` from `127.0.0.1:port` (busybox httpd serving the container's
/// `/etc`), or None while nothing answers.
fn http_get_hostname(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /hostname HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.contains("200 OK").then_some(body)
}

/// Pasta or slirp4netns processes (not zombies) whose command line holds `needle`.
fn helpers_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = e.path();
        let Ok(cmd) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie && (cmd.contains("pasta") || cmd.contains("slirp4netns")) && cmd.contains(needle)
        {
            out.push(cmd);
        }
    }
    out
}

/// Runs a detached busybox httpd publishing `host_port`, checks the host reaches it
/// and `strata port` lists it, removes it and checks the port and helper are gone.
fn serve_and_fetch(run: &dyn Fn(&[&str]) -> Output, network: &str, name: &str) {
    let host_port = free_tcp_port();
    let publish = format!("{host_port}:8080");
    let o = run(&[
        "run",
        "-d",
        "--driver",
        "kernel",
        "--network",
        network,
        "--name",
        name,
        "--hostname",
        "web-in-ctr",
        "-p",
        &publish,
        "demo",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/etc",
    ]);
    assert_eq!(o.status.code(), Some(0), "run -d: {}", show(&o));
    let mut got = None;
    let answered = until(30, || {
        got = http_get_hostname(host_port);
        got.is_some()
    });
    let port_out = run(&["port", name]);
    let rm = run(&["rm", "-f", name]);
    assert!(answered, "no answer on 127.0.0.1:{host_port} ({network})");
    assert!(
        got.as_deref().is_some_and(|b| b.contains("web-in-ctr")),
        "{got:?}"
    );
    assert_eq!(
        stdout(&port_out).trim(),
        format!("8080/tcp -> 0.0.0.0:{host_port}"),
        "{}",
        show(&port_out)
    );
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
    assert!(
        until(10, || helpers_with(&publish).is_empty()),
        "{:?}",
        helpers_with(&publish)
    );
    assert!(
        until(10, || TcpListener::bind(("0.0.0.0", host_port)).is_ok()),
        "host port {host_port} still bound after rm"
    );
}

#[test]
fn published_tcp_port_answers_the_host_as_root() {
    if !ready() {
        return;
    }
    let store = demo_store();
    serve_and_fetch(&|a| run_strata(store, a), "pasta", "net-web-root");
}

#[test]
fn published_tcp_port_through_slirp4netns() {
    if !ready() {
        return;
    }
    let store = demo_store();
    serve_and_fetch(&|a| run_strata(store, a), "slirp4netns", "net-web-slirp");
}

#[test]
fn published_tcp_port_answers_the_host_rootless() {
    if !ready() {
        return;
    }
    // Rootless pasta opens /dev/net/tun in the container's user namespace.
    let tun = std::fs::metadata("/dev/net/tun").map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o666 == 0o666
    });
    assert!(
        tun.unwrap_or(false),
        "/dev/net/tun must be mode 0666 for rootless pasta (scripts/deps sets it)"
    );
    const USER: &str = "strata-rl";
    ensure_user(USER);
    let dir = tempfile::Builder::new()
        .prefix("strata-net-rl")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).expect("chmod")
    };
    mode(dir.path(), 0o777);
    std::fs::copy(strata(), dir.path().join("strata")).expect("copying strata");
    let archive = dir.path().join("demo.tar");
    fixtures::images::build_demo_image(&archive, fixtures::images::ImageFormat::DockerArchive)
        .expect("demo image");
    mode(&archive, 0o644);
    let o = strata_as(
        USER,
        dir.path(),
        &["image", "import", "demo.tar", "--tag", "demo:latest"],
    );
    assert_eq!(o.status.code(), Some(0), "import: {}", show(&o));
    let d = dir.path().to_path_buf();
    serve_and_fetch(&|a| strata_as(USER, &d, a), "pasta", "net-web-rl");
}

#[test]
fn the_hosts_loopback_through_the_gateway() {
    if !ready() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listening on loopback");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\nhello-from-host\n");
        }
    });
    for (network, host) in [
        ("pasta", "host.containers.internal"),
        ("slirp4netns", "10.0.2.2"),
    ] {
        let url = format!("http://{host}:{port}/");
        let o = run_strata(
            demo_store(),
            &[
                "run",
                "--rm",
                "--driver",
                "kernel",
                "--network",
                network,
                "demo",
                "busybox",
                "wget",
                "-qO-",
                &url,
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{network}: {}", show(&o));
        assert_eq!(stdout(&o), "hello-from-host\n", "{network}: {}", show(&o));
    }
}

/// The host's default IPv4 gateway, which pasta gives the container and maps to the
/// host's loopback.
fn gateway() -> Ipv4Addr {
    let text = std::fs::read_to_string("/proc/net/route").expect("/proc/net/route");
    text.lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"00000000"))
                .then(|| u32::from_str_radix(f.get(2)?, 16).ok())
                .flatten()
        })
        .map(|raw| Ipv4Addr::from(u32::from_be(raw.to_le())))
        .expect("the host has a default route")
}

/// Answers every A query with `addr` (others with no answer), on `sock`.
fn dns_responder(sock: UdpSocket, addr: Ipv4Addr) {
    let mut buf = [0u8; 512];
    while let Ok((n, from)) = sock.recv_from(&mut buf) {
        let q = &buf[..n];
        if q.len() < 12 {
            continue;
        }
        // The question: labels up to the zero byte, then type and class.
        let mut i = 12;
        while i < q.len() && q[i] != 0 {
            i += 1 + q[i] as usize;
        }
        let end = i + 5;
        if end > q.len() {
            continue;
        }
        let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
        let answers: u16 = if qtype == 1 { 1 } else { 0 };
        let mut r = Vec::with_capacity(n + 16);
        r.extend_from_slice(&q[0..2]);
        r.extend_from_slice(&[0x81, 0x80, 0, 1]);
        r.extend_from_slice(&answers.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]);
        r.extend_from_slice(&q[12..end]);
        if answers == 1 {
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(&addr.octets());
        }
        let _ = sock.send_to(&r, from);
    }
}

#[test]
fn names_resolve_against_a_resolver_on_the_hosts_loopback() {
    if !ready() {
        return;
    }
    let sock = UdpSocket::bind("127.0.0.1:53")
        .expect("binding 127.0.0.1:53 for the test's DNS responder (is a resolver there?)");
    std::thread::spawn(move || dns_responder(sock, Ipv4Addr::new(198, 51, 100, 7)));
    let gw = gateway().to_string();
    let o = run_strata(
        demo_store(),
        &[
            "run",
            "--rm",
            "--driver",
            "kernel",
            "--dns",
            &gw,
            "--dns-search",
            "strata.test",
            "--add-host",
            "db.strata.test:192.0.2.99",
            "demo",
            "sh",
            "-c",
            "cat /etc/resolv.conf /etc/hosts; busybox nslookup app.example.test",
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(out.contains(&format!("nameserver {gw}\n")), "{out}");
    assert!(out.contains("search strata.test\n"), "{out}");
    assert!(out.contains("192.0.2.99\tdb.strata.test\n"), "{out}");
    assert!(out.contains("198.51.100.7"), "{out}");
}

/// A host whose only resolver listens on its loopback (systemd-resolved's 127.0.0.53,
/// a local dnsmasq): the container, in its own network namespace, cannot reach it, so
/// its resolv.conf names pasta's DNS forward address, which pasta passes on to the
/// host's resolver. The host's resolv.conf is replaced for strata alone (a private
/// mount namespace), its resolver is this test's responder on 127.0.0.77.
#[test]
fn a_resolver_on_the_hosts_loopback_is_reached_through_pasta() {
    if !ready() {
        return;
    }
    let sock = UdpSocket::bind("127.0.0.77:53").expect("binding 127.0.0.77:53");
    std::thread::spawn(move || dns_responder(sock, Ipv4Addr::new(198, 51, 100, 8)));
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("resolv.conf");
    std::fs::write(&conf, "nameserver 127.0.0.77\nsearch strata.test\n").expect("resolv.conf");
    let o = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"")
        .arg(&conf)
        .arg(strata())
        .arg("--root")
        .arg(demo_store())
        .args([
            "run",
            "--rm",
            "--driver",
            "kernel",
            "--network",
            "pasta",
            "demo",
            "sh",
            "-c",
            "cat /etc/resolv.conf; busybox nslookup app.example.test",
        ])
        .output()
        .expect("running unshare");
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(out.contains("nameserver 169.254.1.1\n"), "{out}");
    assert!(!out.contains("127.0.0.77"), "{out}");
    assert!(out.contains("search strata.test\n"), "{out}");
    assert!(out.contains("198.51.100.8"), "{out}");
}

/// Whether a UDP socket is bound to `127.0.0.1:port` on the host (`/proc/net/udp`).
fn udp_bound_on_loopback(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

/// The demo image's busybox has no UDP server applet, so the data path is not
/// exercised here: the test checks pasta binds the published UDP port on the address
/// asked for, `strata port` lists it, and it is released after `rm`. (The DNS test
/// carries UDP the other way, container to host.)
#[test]
fn published_udp_port() {
    if !ready() {
        return;
    }
    let host_port = free_udp_port();
    let publish = format!("127.0.0.1:{host_port}:9999/udp");
    let name = "net-udp";
    let o = run_strata(
        demo_store(),
        &[
            "run", "-d", "--driver", "kernel", "--name", name, "-p", &publish, "demo", "sleep",
            "1000",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let bound = until(30, || udp_bound_on_loopback(host_port));
    let port_out = run_strata(demo_store(), &["port", name, "9999/udp"]);
    let rm = run_strata(demo_store(), &["rm", "-f", name]);
    assert!(bound, "nothing bound 127.0.0.1:{host_port}/udp");
    assert_eq!(
        stdout(&port_out).trim(),
        format!("127.0.0.1:{host_port}"),
        "{}",
        show(&port_out)
    );
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
    assert!(
        until(10, || !udp_bound_on_loopback(host_port)),
        "127.0.0.1:{host_port}/udp still bound after rm"
    );
}

/// Two consecutive TCP ports nothing listens on now.
fn free_tcp_pair() -> u16 {
    loop {
        let p = free_tcp_port();
        if p < u16::MAX && TcpListener::bind(("0.0.0.0", p + 1)).is_ok() {
            return p;
        }
    }
}

/// `-p A-B:C-D` publishes port by port, and `-p PORT` on a free host port that
/// `strata port` names: two busybox httpd in one container, each reached from the host.
#[test]
fn a_port_range_and_a_port_without_host_port() {
    if !ready() {
        return;
    }
    let first = free_tcp_pair();
    let range = format!("{first}-{}:8080-8081", first + 1);
    let name = "net-range";
    let o = run_strata(
        demo_store(),
        &[
            "run",
            "-d",
            "--driver",
            "kernel",
            "--name",
            name,
            "--hostname",
            "ranged",
            "-p",
            &range,
            "-p",
            "8082",
            "demo",
            "sh",
            "-c",
            "busybox httpd -p 8080 -h /etc; busybox httpd -p 8081 -h /etc; \
             exec busybox httpd -f -p 8082 -h /etc",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let port_out = run_strata(demo_store(), &["port", name, "8082"]);
    let picked: Option<u16> = stdout(&port_out)
        .trim()
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok());
    let answers = |p: u16| http_get_hostname(p).is_some_and(|b| b.contains("ranged"));
    let ranged = until(30, || answers(first) && answers(first + 1));
    let single = picked.is_some_and(|p| until(30, || answers(p)));
    let listed = stdout(&run_strata(demo_store(), &["port", name]));
    let rm = run_strata(demo_store(), &["rm", "-f", name]);
    assert!(ranged, "{range}: no answer on both host ports");
    assert!(single, "-p 8082: {}", show(&port_out));
    for (ctr, host) in [(8080, first), (8081, first + 1)] {
        assert!(
            listed.contains(&format!("{ctr}/tcp -> 0.0.0.0:{host}")),
            "{listed}"
        );
    }
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
}

#[test]
fn a_host_port_in_use_is_one_line_and_125_leaving_nothing() {
    if !ready() {
        return;
    }
    // Dual-stack: pasta binds IPv4 and IPv6 and fails only when neither is free.
    let busy = TcpListener::bind("[::]:0").expect("listening");
    let port = busy.local_addr().expect("address").port();
    let publish = format!("{port}:80");
    let o = run_strata(
        demo_store(),
        &[
            "run", "--rm", "--driver", "kernel", "--name", "net-busy", "-p", &publish, "demo",
            "true",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("pasta") && err.contains(&port.to_string()),
        "{err}"
    );
    let ps = stdout(&run_strata(demo_store(), &["ps", "-a"]));
    assert!(!ps.contains("net-busy"), "{ps}");
    assert!(
        helpers_with(&publish).is_empty(),
        "{:?}",
        helpers_with(&publish)
    );
    // A bad flag value is refused before anything is made.
    for bad in [
        ["-p", "8000-8001:80"],
        ["-p", "x:80"],
        ["--dns", "not-an-ip"],
        ["--add-host", "nocolon"],
        ["--network", "bridge"],
    ] {
        let mut args = vec!["run", "--rm", "--name", "net-bad"];
        args.extend_from_slice(&bad);
        args.extend_from_slice(&["demo", "true"]);
        let o = run_strata(demo_store(), &args);
        assert_eq!(o.status.code(), Some(125), "{bad:?}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
    }
    let ps = stdout(&run_strata(demo_store(), &["ps", "-a"]));
    assert!(!ps.contains("net-bad"), "{ps}");
    drop(busy);
}
