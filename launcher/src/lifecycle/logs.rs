//! A detached container's log: its stdout and stderr (a pty's output with `-t`), as
//! written, in `containers/<id>/runtime/ctr.log`, kept after it ends; `logs` prints
//! it, the last lines with `--tail`, following while it runs with `-f`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

/// The log file of the container in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("runtime").join("ctr.log")
}

/// The offset where the last `n` lines of `data` start.
pub fn tail_start(data: &[u8], n: usize) -> usize {
    if n == 0 {
        return data.len();
    }
    // A final newline ends the last line; it does not start an empty one.
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// Prints the log at `path` to `out` (from the last `tail` lines when given); with
/// `follow`, goes on printing what is appended while `running()` says so.
pub fn print(
    path: &Path,
    tail: Option<usize>,
    follow: bool,
    running: impl Fn() -> bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        // A created container has no log yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("opening the log {}", path.display())),
    };
    let mut data = Vec::new();
    f.read_to_end(&mut data)
        .with_context(|| format!("reading the log {}", path.display()))?;
    let from = tail.map(|n| tail_start(&data, n)).unwrap_or(0);
    out.write_all(&data[from..])
        .context("writing the log out")?;
    out.flush().context("writing the log out")?;
    if !follow {
        return Ok(());
    }
    print_from(path, data.len() as u64, running, out)
}

/// Prints what the log at `path` holds past offset `pos`, and what is appended, until
/// `running()` says the container ended (the file may not exist yet).
pub fn print_from(
    path: &Path,
    mut pos: u64,
    running: impl Fn() -> bool,
    out: &mut dyn Write,
) -> Result<()> {
    loop {
        // Checked before reading, so what was written before it ended is printed.
        let still = running();
        let mut more = Vec::new();
        match std::fs::File::open(path) {
            Ok(mut f) => {
                f.seek(SeekFrom::Start(pos))
                    .and_then(|_| f.read_to_end(&mut more))
                    .with_context(|| format!("reading the log {}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("opening the log {}", path.display()));
            }
        }
        pos += more.len() as u64;
        if !more.is_empty() {
            out.write_all(&more).context("writing the log out")?;
            out.flush().context("writing the log out")?;
        }
        if !still {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tail_lines() {
        let d = b"a\nb\nc\n";
        assert_eq!(&d[tail_start(d, 1)..], b"c\n");
        assert_eq!(&d[tail_start(d, 2)..], b"b\nc\n");
        assert_eq!(&d[tail_start(d, 9)..], b"a\nb\nc\n");
        assert_eq!(&d[tail_start(d, 0)..], b"");
        let partial = b"a\nb";
        assert_eq!(&partial[tail_start(partial, 1)..], b"b");
    }
}
