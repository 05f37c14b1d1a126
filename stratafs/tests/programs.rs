//! Real programs on the merged tree, as users run them, on kernel overlayfs and on
//! the implementation under test (three lowers, the same copies): git on a
//! repository a lower layer holds (commit, rename, `gc` packing and pruning the
//! lower's loose objects, fsck, checkout), cargo rebuilding a crate whose `target/`
//! a lower layer holds (fingerprints rewritten, hard links replaced, objects copied
//! up), and Python importing a package, then the module changed (its cached
//! bytecode must be found stale by the source's mtime and size). Each command's exit
//! status and output must be the same on both mounts.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use fixtures::layers::LayerSet;

/// Fixed identities and dates, so both sides make the same commits.
const GIT_ENV: [(&str, &str); 7] = [
    ("GIT_AUTHOR_NAME", "strata"),
    ("GIT_AUTHOR_EMAIL", "strata@example.invalid"),
    ("GIT_COMMITTER_NAME", "strata"),
    ("GIT_COMMITTER_EMAIL", "strata@example.invalid"),
    ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
    ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
];

/// `sh -c script` in `dir`: "exit STATUS" and stdout, the mount point replaced by
/// `MNT` (stderr is shown when the status is not 0).
fn sh(dir: &Path, mnt: &Path, script: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .envs(GIT_ENV)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("CARGO", &cargo)
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("running sh");
    let m = mnt.display().to_string();
    let mut out = format!(
        "exit {:?}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).replace(&m, "MNT")
    );
    if !o.status.success() {
        out.push_str(&format!(
            "stderr: {}",
            String::from_utf8_lossy(&o.stderr).replace(&m, "MNT")
        ));
    }
    out
}

/// Runs `script` in `sub` of both mounts; a mismatch when they differ, and the
/// kernel's output (which must show success).
fn both(d: &mut Differential, label: &str, sub: &str, script: &str) -> String {
    let (km, um) = (d.km().to_path_buf(), d.um().to_path_buf());
    let k = sh(&km.join(sub), &km, script);
    let u = sh(&um.join(sub), &um, script);
    if k != u {
        d.mismatch(format!(
            "{label} differs:\n--- kernel\n{k}\n--- {}\n{u}",
            d.imp.name
        ));
    }
    assert!(
        k.starts_with("exit Some(0)"),
        "{label} failed on kernel overlayfs: {k}"
    );
    k
}

/// Runs `script` with `sh` in `dir` while building the layers; panics on failure.
fn build_step(dir: &Path, script: &str) {
    let out = sh(dir, dir, script);
    assert!(
        out.starts_with("exit Some(0)"),
        "building the layers: {script}: {out}"
    );
}

/// Three lowers: a git repository (bottom), a crate built in place and a Python
/// package (middle), and files over the repository's (top).
fn layers(root: &Path) -> anyhow::Result<LayerSet> {
    let set = LayerSet::create(root, 3)?;
    let (top, mid, bottom) = (&set.lowers[0], &set.lowers[1], &set.lowers[2]);
    std::fs::create_dir_all(bottom.join("repo/dir/deep"))?;
    build_step(
        &bottom.join("repo"),
        "git init -q -b main . && printf 'a\\n' > a.txt && printf 'b\\n' > dir/b.txt \
         && printf 'c\\n' > dir/deep/c.txt && printf 'r\\n' > README \
         && git add -A && git commit -q -m one",
    );
    // The top layer changes a tracked file: git must see it modified.
    std::fs::create_dir_all(top.join("repo"))?;
    std::fs::write(top.join("repo/README"), "r from the top layer\n")?;
    std::fs::create_dir_all(mid.join("hello/src"))?;
    std::fs::write(
        mid.join("hello/Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )?;
    std::fs::write(
        mid.join("hello/src/main.rs"),
        "fn main() { println!(\"one\"); }\n",
    )?;
    build_step(&mid.join("hello"), "\"$CARGO\" build -q --offline");
    std::fs::create_dir_all(mid.join("py/pkg"))?;
    std::fs::write(mid.join("py/pkg/__init__.py"), "")?;
    std::fs::write(mid.join("py/pkg/m.py"), "def f():\n    return 1\n")?;
    Ok(set)
}

#[test]
fn git_cargo_and_python_behave_as_on_kernel_overlayfs() {
    let Some(mut d) = Differential::new(layers) else {
        return;
    };
    let git = "set -e; git status --porcelain; git diff --stat; \
         git add -A && git commit -q -m two; \
         printf 'n\\n' > new.txt && git add new.txt && git commit -q -m three; \
         git mv a.txt moved.txt && mkdir sub && git mv dir sub/dir && git commit -q -m four; \
         git gc -q --prune=now; git fsck --strict --no-progress; \
         git count-objects -v | grep -E '^(count|in-pack|garbage):'; \
         git log --format='%H %s'; git ls-files -s; \
         git checkout -q HEAD~2 && ls -R . | grep -v '^$' && git checkout -q main && git status --porcelain";
    let out = both(&mut d, "git", "repo", git);
    assert!(
        out.contains(" M README"),
        "the top layer's README shows as modified: {out}"
    );
    assert!(out.contains("in-pack: "), "{out}");
    let cargo = "set -e; ./target/debug/hello; \
         sed -i 's/one/two/' src/main.rs; \"$CARGO\" build -q --offline; ./target/debug/hello; \
         \"$CARGO\" build -q --offline --release; ./target/release/hello; \
         ls target/debug";
    let out = both(&mut d, "cargo", "hello", cargo);
    assert!(out.contains("one\ntwo\ntwo\n"), "{out}");
    let py = "set -e; python3 -c 'import pkg.m; print(pkg.m.f())'; ls pkg/__pycache__ | sed 's/cpython-[0-9]*/cpython/'; \
         printf 'def f():\\n    return 22\\n' > pkg/m.py; \
         python3 -c 'import pkg.m; print(pkg.m.f())'; \
         python3 -m compileall -q pkg >/dev/null; python3 -c 'import pkg.m; print(pkg.m.f())'";
    let out = both(&mut d, "python", "py", py);
    assert!(out.contains("1\n") && out.ends_with("22\n22\n"), "{out}");
    d.finish();
}
