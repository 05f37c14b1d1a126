//! Merged readdir: every name once, the same set as the kernel's, and positions from
//! telldir stay valid (seekdir back gives the same continuation), also while the
//! directory changes underneath.

mod common;

use std::ffi::CStr;
use std::path::Path;

use common::*;
use fixtures::layers::{self, LayerSet};

/// An open directory stream; closed on drop.
struct Dir(*mut libc::DIR);

impl Dir {
    fn open(p: &Path) -> Self {
        let c = cpath(p);
        // SAFETY: valid C string.
        let d = unsafe { libc::opendir(c.as_ptr()) };
        assert!(!d.is_null(), "opendir {}", p.display());
        Self(d)
    }

    fn next(&mut self) -> Option<String> {
        self.next_with_ino().map(|(name, _)| name)
    }

    /// The next entry's name and d_ino.
    fn next_with_ino(&mut self) -> Option<(String, u64)> {
        // SAFETY: `self.0` is an open stream; the entry is copied before the next call.
        unsafe {
            let e = libc::readdir(self.0);
            if e.is_null() {
                return None;
            }
            let name = CStr::from_ptr((*e).d_name.as_ptr())
                .to_string_lossy()
                .into_owned();
            Some((name, (*e).d_ino))
        }
    }

    fn rest(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.next()).collect()
    }

    fn tell(&mut self) -> libc::c_long {
        // SAFETY: open stream.
        unsafe { libc::telldir(self.0) }
    }

    fn seek(&mut self, pos: libc::c_long) {
        // SAFETY: open stream, a position telldir returned.
        unsafe { libc::seekdir(self.0, pos) }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: open stream, closed once.
        unsafe { libc::closedir(self.0) };
    }
}

/// Reads `rel` in two goes around a telldir, seeks back and reads again, while `during`
/// changes the tree; returns what a user would see, sorted where order is free.
fn probe(m: &Path, rel: &str, during: impl Fn(&Path)) -> String {
    probe_after(m, rel, 3, during)
}

/// [`probe`] with the telldir after `head` entries.
fn probe_after(m: &Path, rel: &str, head: usize, during: impl Fn(&Path)) -> String {
    let mut d = Dir::open(&m.join(rel));
    let head: Vec<String> = (0..head).filter_map(|_| d.next()).collect();
    let pos = d.tell();
    during(m);
    let tail = d.rest();
    d.seek(pos);
    let again = d.rest();
    let mut all: Vec<String> = head.iter().chain(&tail).cloned().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    format!(
        "names {all:?} duplicates {} seekdir-repeats {}",
        n - all.len(),
        tail == again
    )
}

#[test]
fn merged_listings_are_complete_and_seekable() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    for dir in ["", "d", "opq", "d/sub", "dover"] {
        d.compare_with(&format!("readdir of /{dir}"), |m| probe(m, dir, |_| {}));
    }
    // Changes while a listing is open: entries that existed throughout appear once.
    d.compare_with("readdir of / while changing it", |m| {
        let out = probe(m, "", |m| {
            let _ = std::fs::write(m.join("zz-new"), "n");
            let _ = std::fs::remove_file(m.join("top"));
        });
        out.replace("\"top\", ", "").replace("\"zz-new\"", "")
    });
    d.compare("after the changes");
    d.finish();
}

/// Lists each of `dirs` and lstats every entry right after, as `ls -li` does: name,
/// whether d_ino is st_ino, and the attributes a walk compares. stratafs sends
/// attributes with the listings of a process that stats what it lists (READDIRPLUS);
/// with `fresh_readers` each listing is read by a new thread instead, which gets a
/// plain listing.
fn listed_with_attributes(m: &Path, dirs: &[&str], fresh_readers: bool) -> String {
    use std::os::unix::fs::MetadataExt;
    let read = |dir: &Path| -> Vec<(String, u64)> {
        let mut d = Dir::open(dir);
        std::iter::from_fn(|| d.next_with_ino())
            .filter(|(n, _)| n != "." && n != "..")
            .collect()
    };
    let mut out = Vec::new();
    for dir in dirs {
        let path = m.join(dir);
        let mut entries = if fresh_readers {
            std::thread::scope(|s| s.spawn(|| read(&path)).join().expect("reader thread"))
        } else {
            read(&path)
        };
        entries.sort();
        for (name, d_ino) in entries {
            let rel = Path::new(dir).join(&name);
            let line = match std::fs::symlink_metadata(m.join(&rel)) {
                Ok(md) => format!(
                    "{} d_ino==st_ino {} mode {:o} nlink {} size {} uid {}",
                    rel.display(),
                    d_ino == md.ino(),
                    md.mode(),
                    md.nlink(),
                    md.size(),
                    md.uid()
                ),
                Err(e) => format!("{} {e}", rel.display()),
            };
            out.push(line);
        }
    }
    out.join("\n")
}

#[test]
fn listed_inode_numbers_and_attributes_stay_true_through_changes() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    let before = ["", "d", "opq", "d/sub", "dover", "ren", "ne"];
    d.compare_with("listing before changes", |m| {
        listed_with_attributes(m, &before, false)
    });
    // Copy-ups (data and metadata), a hard link copied up, a name removed and made
    // again (a new inode), a lower directory renamed, a file grown: each listing read
    // again must show the new attributes and keep d_ino equal to st_ino.
    d.step(Op::Append(p("d/keep"), "more".into()));
    d.step(Op::Chmod(p("top"), 0o600));
    d.step(Op::Append(p("h1"), "+".into()));
    d.step(Op::Unlink(p("mid")));
    d.step(Op::Write(p("mid"), "new mid".into()));
    d.step(Op::Rename(p("ren"), p("d/ren2"), 0));
    d.step(Op::Link(p("d/y"), p("d/y2")));
    let after = ["", "d", "opq", "d/sub", "dover", "d/ren2", "ne"];
    d.compare_with("plain listings after changes", |m| {
        listed_with_attributes(m, &after, true)
    });
    d.remount();
    d.compare_with("listings with attributes after a remount", |m| {
        listed_with_attributes(m, &after, false)
    });
    d.finish();
}

/// Two lowers sharing `big/`, a directory of 6000 names below (large enough that
/// stratafs lists it on a thread of its own while the kernel reads it, when its lowers
/// were not read yet), where the top lower whites out every 97th name and adds 300.
fn large_dir(root: &Path) -> anyhow::Result<LayerSet> {
    let set = LayerSet::create(root, 2)?;
    let bottom = set.lower(1)?;
    bottom
        .dir("big/sub", 0o755)?
        .file("big/sub/x", b"x", 0o644)?;
    for i in 0..6000 {
        bottom.file(&format!("big/n{i:05}"), b"", 0o644)?;
    }
    bottom.finish()?;
    let top = set.lower(0)?;
    top.file("big/sub/y", b"y", 0o644)?;
    for i in (0..6000).step_by(97) {
        top.whiteout(&format!("big/n{i:05}"))?;
    }
    for i in 0..300 {
        top.file(&format!("big/t{i:03}"), b"t", 0o644)?;
    }
    top.finish()?;
    Ok(set)
}

#[test]
fn large_listings_read_while_scanned_are_complete_and_seekable() {
    let Some(mut d) = Differential::new(large_dir) else {
        return;
    };
    // Each remount starts a daemon that has not read the lowers: the listing is served
    // while the lowers are read. Positions are taken early and deep into the listing.
    for head in [3, 2500, 6100] {
        d.remount();
        d.compare_with(&format!("readdir of /big, telldir after {head}"), |m| {
            probe_after(m, "big", head, |_| {})
        });
    }
    d.remount();
    d.compare_with("plain listing of /big, then lstat of each", |m| {
        listed_with_attributes(m, &["big"], true)
    });
    // Upper names, upper whiteouts and copy-ups merged in.
    d.step(Op::Write(p("big/u-new"), "u".into()));
    d.step(Op::Unlink(p("big/n00001")));
    d.step(Op::Unlink(p("big/t007")));
    d.step(Op::Append(p("big/n00002"), "+".into()));
    d.step(Op::Rename(p("big/n00003"), p("big/u-moved"), 0));
    d.step(Op::Mkdir(p("big/u-dir"), 0o755));
    for head in [3, 4000] {
        d.remount();
        d.compare_with(
            &format!("readdir of /big over an upper, telldir after {head}"),
            |m| probe_after(m, "big", head, |_| {}),
        );
    }
    d.remount();
    d.compare_with("plain listing of /big over an upper, then lstat", |m| {
        listed_with_attributes(m, &["big"], true)
    });
    // A change while a listing is being read.
    d.remount();
    d.compare_with("readdir of /big while changing it", |m| {
        let out = probe_after(m, "big", 10, |m| {
            let _ = std::fs::write(m.join("big/zz-new"), "n");
            let _ = std::fs::remove_file(m.join("big/n05999"));
        });
        out.replace("\"n05999\", ", "").replace(", \"zz-new\"", "")
    });
    d.compare("after the changes");
    d.finish();
}
