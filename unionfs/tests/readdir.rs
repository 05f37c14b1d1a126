//! Merged readdir: every name once, the same set as the kernel's, and positions from
//! telldir stay valid (seekdir back gives the same continuation), also while the
//! directory changes underneath.

mod common;

use std::ffi::CStr;
use std::path::Path;

use common::*;
use fixtures::layers;

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
        // SAFETY: `self.0` is an open stream; the entry is copied before the next call.
        unsafe {
            let e = libc::readdir(self.0);
            if e.is_null() {
                return None;
            }
            Some(
                CStr::from_ptr((*e).d_name.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            )
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
    let mut d = Dir::open(&m.join(rel));
    let head: Vec<String> = (0..3).filter_map(|_| d.next()).collect();
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
