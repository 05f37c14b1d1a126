//! `-o stats=PATH`: the daemon counts the requests it serves per opcode and writes them
//! to PATH on SIGUSR1 (the mount carries on) and at unmount.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// The count of `name` in a stats table (`NAME<TAB>count<TAB>busy_us` lines).
fn count_of(table: &str, name: &str) -> u64 {
    table
        .lines()
        .find_map(|l| {
            let mut f = l.split('\t');
            (f.next() == Some(name)).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

/// The pid of the stratafs daemon serving `mnt` (its command line names the mount point).
fn daemon_of(mnt: &Path) -> Option<i32> {
    let want = mnt.as_os_str().as_encoded_bytes();
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_ours =
            args.first().is_some_and(|a| a.ends_with(b"stratafs")) && args.contains(&want);
        is_ours.then_some(pid)
    })
}

/// Waits for the daemon to write `path` (it was removed first).
fn wait_for(path: &Path, what: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(t) = fs::read_to_string(path) {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no stats written to {} {what}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Mounts `ROOT/l` (already filled) with an upper, a work dir and `stats=ROOT/stats.tsv`
/// at `ROOT/m`; returns the mount, its path and the stats path.
fn mount_with_stats(imp: &Impl, root: &Path) -> (Mount, PathBuf, PathBuf) {
    let [l, u, w, m] = ["l", "u", "w", "m"].map(|d| root.join(d));
    for d in [&u, &w, &m] {
        fs::create_dir_all(d).expect("mkdir");
    }
    let stats = root.join("stats.tsv");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},stats={}",
        l.display(),
        u.display(),
        w.display(),
        stats.display()
    );
    let mount = imp.mount_with(&m, &opts).unwrap_or_else(|e| panic!("{e}"));
    (mount, m, stats)
}

#[test]
fn requests_are_counted_on_signal_and_at_unmount() {
    if !privileged_or_skip() {
        return;
    }
    let imp = Impl::selected();
    if imp.name != "stratafs" {
        eprintln!("skipped: stats= is stratafs' own option");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let l = tmp.path().join("l");
    fs::create_dir_all(&l).expect("mkdir lower");
    fs::write(l.join("present"), "x").expect("write lower");
    let (mount, m, stats) = mount_with_stats(&imp, tmp.path());
    let pid = daemon_of(&m).expect("the daemon's pid");

    // 100 names looked up once each: 100 LOOKUPs the kernel waited on.
    for i in 0..100 {
        assert!(fs::symlink_metadata(m.join(format!("missing{i}"))).is_err());
    }
    fs::remove_file(&stats).expect("remove the table written at mount");
    // SAFETY: kill has no memory-safety preconditions.
    let r = unsafe { libc::kill(pid, libc::SIGUSR1) };
    assert_eq!(r, 0, "signal the daemon");
    let table = wait_for(&stats, "on SIGUSR1");
    let lookups = count_of(&table, "LOOKUP");
    assert!(
        (100..110).contains(&lookups),
        "100 missing names looked up, table says {lookups} LOOKUPs:\n{table}"
    );
    assert!(
        count_of(&table, "ROUND_TRIPS") >= lookups,
        "round trips include the lookups:\n{table}"
    );
    assert_eq!(
        fs::read_to_string(m.join("present")).expect("the mount outlives SIGUSR1"),
        "x"
    );

    // 50 more; the table at unmount has them all.
    for i in 100..150 {
        assert!(fs::symlink_metadata(m.join(format!("missing{i}"))).is_err());
    }
    fs::remove_file(&stats).expect("remove the table written on SIGUSR1");
    mount.unmount();
    let table = wait_for(&stats, "at unmount");
    let lookups = count_of(&table, "LOOKUP");
    assert!(
        (150..170).contains(&lookups),
        "150 missing names looked up in all, table at unmount says {lookups}:\n{table}"
    );
}

/// Runs `find ARGS` in `dir` and returns its output, sorted by line.
fn find(dir: &Path, args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("find")
        .arg(dir)
        .args(args)
        .output()
        .expect("run find");
    assert!(out.status.success(), "find {args:?}: {out:?}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// `find` lists names only (the daemon answers it without attributes, which the kernel
/// then caches); a `find -printf '%s'` after it reads those cached listings and stats
/// every name. Once it looks up the first file, the daemon drops the cached bare
/// listings, so its next listings come with attributes: far fewer LOOKUPs than files,
/// and the sizes all true.
#[test]
fn a_stat_walk_after_a_plain_walk_gets_attributes_with_its_listings() {
    if !privileged_or_skip() {
        return;
    }
    let imp = Impl::selected();
    if imp.name != "stratafs" {
        eprintln!("skipped: stats= is stratafs' own option");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let l = tmp.path().join("l");
    let (dirs, files) = (40, 25);
    let mut want = Vec::new();
    for d in 0..dirs {
        let dir = l.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).expect("mkdir lower");
        for f in 0..files {
            let size = d * files + f;
            fs::write(dir.join(format!("f{f:02}")), vec![b'x'; size]).expect("write lower");
            want.push(format!("{size} d{d:02}/f{f:02}"));
        }
    }
    want.sort();
    let (mount, m, stats) = mount_with_stats(&imp, tmp.path());
    assert_eq!(find(&m, &["-type", "f"]).len(), dirs * files, "plain walk");
    let sized = find(&m, &["-type", "f", "-printf", "%s %P\n"]);
    assert_eq!(sized, want, "sizes seen by the walk that stats");
    fs::remove_file(&stats).expect("remove the table written at mount");
    mount.unmount();
    let table = wait_for(&stats, "at unmount");
    let lookups = count_of(&table, "LOOKUP");
    assert!(
        lookups < (dirs * files / 4) as u64,
        "{} files statted after a plain walk: {lookups} LOOKUPs (each listing after \
         the first should carry attributes):\n{table}",
        dirs * files
    );
}
