//! A small C project, generated deterministically into a lower layer before mounting,
//! and built inside the mount with `make -j2` (the objects and the binary land in the
//! upper): a real job mixing lookups, reads of sources and headers, and file creation.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Where the project lives inside a tree.
pub const DIR: &str = "proj";

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// One module: a header with its prototypes and a source with a few functions that call
/// into the previous module, so the compiler has some work and some headers to read.
fn module(i: usize) -> (String, String) {
    let mut h = String::new();
    let _ = writeln!(h, "#ifndef MOD{i:03}_H\n#define MOD{i:03}_H\n");
    let _ = writeln!(h, "#include <stddef.h>\n#include <stdint.h>\n");
    let _ = writeln!(
        h,
        "struct m{i:03}_state {{ uint64_t acc; uint32_t n; char tag[16]; }};\n"
    );
    for f in 0..6 {
        let _ = writeln!(
            h,
            "uint64_t m{i:03}_f{f}(uint64_t x, struct m{i:03}_state *s);"
        );
    }
    let _ = writeln!(h, "uint64_t m{i:03}_run(uint64_t seed);\n\n#endif");

    let mut c = String::new();
    let _ = writeln!(
        c,
        "#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>"
    );
    let _ = writeln!(c, "#include \"common.h\"\n#include \"m{i:03}.h\"");
    if i > 0 {
        let _ = writeln!(c, "#include \"m{:03}.h\"", i - 1);
    }
    let _ = writeln!(c);
    for f in 0..6 {
        let _ = writeln!(
            c,
            "uint64_t m{i:03}_f{f}(uint64_t x, struct m{i:03}_state *s)\n{{\n    \
             uint64_t v = x ^ {k}u;\n    \
             for (unsigned r = 0; r < {rounds}; r++) {{\n        \
             v = MIX(v + r) * {mul}u;\n        \
             if (v % 7 == {f}) s->n++;\n        \
             s->acc += v >> {shift};\n    }}\n    \
             snprintf(s->tag, sizeof s->tag, \"%u\", s->n);\n    \
             return v + strlen(s->tag);\n}}\n",
            k = (i * 131 + f * 17) % 9973,
            rounds = 8 + (i + f) % 24,
            mul = 2_654_435_761u64 + (i * 6 + f) as u64,
            shift = 1 + (i + f) % 13,
        );
    }
    let _ = writeln!(
        c,
        "uint64_t m{i:03}_run(uint64_t seed)\n{{\n    \
         struct m{i:03}_state s;\n    memset(&s, 0, sizeof s);\n    \
         uint64_t v = seed;"
    );
    for f in 0..6 {
        let _ = writeln!(c, "    v = m{i:03}_f{f}(v, &s);");
    }
    if i > 0 {
        let _ = writeln!(c, "    v ^= m{:03}_run(v & 0xffff);", i - 1);
    }
    let _ = writeln!(c, "    return v + s.acc;\n}}");
    (h, c)
}

/// Writes the project into `root/proj`: `common.h`, `files` modules (`mNNN.h` +
/// `mNNN.c`), `main.c` and a Makefile building `app` from them.
pub fn generate(root: &Path, files: usize) -> Result<()> {
    let dir = root.join(DIR);
    fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    write(
        &dir.join("common.h"),
        "#ifndef COMMON_H\n#define COMMON_H\n#include <stdint.h>\n\
         #define MIX(v) (((v) << 13) ^ ((v) >> 7) ^ ((v) * 0x9e3779b97f4a7c15ull))\n#endif\n",
    )?;
    let files = files.max(1);
    let mut main = String::from("#include <stdio.h>\n#include <stdint.h>\n");
    for i in 0..files {
        let (h, c) = module(i);
        write(&dir.join(format!("m{i:03}.h")), &h)?;
        write(&dir.join(format!("m{i:03}.c")), &c)?;
        let _ = writeln!(main, "#include \"m{i:03}.h\"");
    }
    let _ = writeln!(main, "\nint main(void)\n{{\n    uint64_t v = 1;");
    for i in 0..files {
        let _ = writeln!(main, "    v += m{i:03}_run(v);");
    }
    let _ = writeln!(
        main,
        "    printf(\"%llu\\n\", (unsigned long long)v);\n    return 0;\n}}"
    );
    write(&dir.join("main.c"), &main)?;
    write(
        &dir.join("Makefile"),
        "CC ?= cc\nCFLAGS ?= -O1 -Wall\n\
         SRCS := $(wildcard m[0-9]*.c) main.c\nOBJS := $(SRCS:.c=.o)\n\n\
         app: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n\
         %.o: %.c common.h $(wildcard m[0-9]*.h)\n\t$(CC) $(CFLAGS) -c -o $@ $<\n\n\
         clean:\n\trm -f app $(OBJS)\n\n.PHONY: clean\n",
    )?;
    Ok(())
}

/// Runs `make -j2` in `root/proj` and checks that it built `app`.
pub fn build(root: &Path) -> Result<()> {
    let dir = root.join(DIR);
    let out = Command::new("make")
        .args(["-j2", "-s", "-C"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run make in {}", dir.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| l.contains("error"))
            .or_else(|| err.lines().last())
            .unwrap_or("");
        bail!(
            "make -j2 in {} failed ({}): {}",
            dir.display(),
            out.status,
            first.trim()
        );
    }
    let app = dir.join("app");
    fs::metadata(&app).with_context(|| format!("make built no {}", app.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_project_builds() -> Result<()> {
        let dir = tempfile::tempdir()?;
        generate(dir.path(), 3)?;
        build(dir.path())
    }
}
