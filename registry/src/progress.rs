//! What a pull or push shows: one bar per blob on a terminal (indicatif), one plain
//! line per finished blob otherwise (logs and CI), nothing with `-q`.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The display of one command.
pub struct Progress {
    multi: Option<MultiProgress>,
    quiet: bool,
}

/// The display of one blob.
pub struct BlobProgress {
    bar: Option<ProgressBar>,
    label: String,
    quiet: bool,
}

/// `sha256:1a2b...` as the 12 hex digits people recognize.
pub fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

impl Progress {
    /// Bars when stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Progress {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { multi, quiet }
    }

    /// A line of its own (`Writing manifest`), unless quiet.
    pub fn line(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    /// A bar for `what` (`Copying blob`, `Copying config`) `digest` of `size` bytes.
    pub fn blob(&self, what: &str, digest: &str, size: u64) -> BlobProgress {
        let label = format!("{what} {}", short(digest));
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(size));
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(label.clone());
            b
        });
        BlobProgress {
            bar,
            label,
            quiet: self.quiet,
        }
    }
}

impl BlobProgress {
    /// The bar itself (none when not drawn), for a stream that counts bytes.
    pub fn clone_handle(&self) -> Option<ProgressBar> {
        self.bar.clone()
    }

    /// Bytes so far.
    pub fn set(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(n);
        }
    }

    /// Finished: `how` is `done`, `skipped: ...`, `resumed at N bytes, done`.
    pub fn finish(&self, how: &str) {
        match &self.bar {
            Some(b) => b.finish_with_message(format!("{} {how}", self.label)),
            None if !self.quiet => eprintln!("{} {how}", self.label),
            None => {}
        }
    }
}
