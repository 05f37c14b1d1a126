//! Where errors and debug lines go: `--log FILE` (appended) or stderr, as text or, with
//! `--log-format json`, one JSON object per line with `level`, `msg` and `time`, as runc
//! writes them (podman reads a failed command's `msg` back from the log).

use std::io::Write;
use std::path::PathBuf;

/// The log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `level=error msg="..."`-free plain lines: `strata-runtime: MESSAGE`.
    Text,
    /// One JSON object per line.
    Json,
}

/// The command's logger.
#[derive(Debug)]
pub struct Logger {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

impl Logger {
    /// From the global options (an unknown `--log-format` counts as text; the command
    /// refuses it first).
    pub fn new(global: &liboci_cli::GlobalOpts) -> Logger {
        let format = match global.log_format.as_deref() {
            Some("json") => Format::Json,
            _ => Format::Text,
        };
        Logger {
            file: global.log.clone(),
            format,
            debug: global.debug,
        }
    }

    /// Logs an error (one line whatever the message holds).
    pub fn error(&self, msg: &str) {
        self.write("error", msg);
        if self.file.is_some() {
            // The caller (conmon, a shell) sees it too.
            eprintln!("strata-runtime: {}", one_line(msg));
        }
    }

    /// Logs a debug line with `--debug`.
    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    fn write(&self, level: &str, msg: &str) {
        let line = match self.format {
            Format::Json => serde_json::json!({
                "level": level,
                "msg": one_line(msg),
                "time": now_rfc3339(),
            })
            .to_string(),
            Format::Text => format!("strata-runtime: {level}: {}", one_line(msg)),
        };
        let written = self.file.as_ref().is_some_and(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()))
                .is_ok()
        });
        if !written {
            eprintln!("{line}");
        }
    }
}

fn one_line(msg: &str) -> String {
    msg.replace('\n', " ")
}

pub use crate::runtime::clock::{now_rfc3339, rfc3339};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_are_one_object_per_line() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = d.path().join("log.json");
        let l = Logger {
            file: Some(log.clone()),
            format: Format::Json,
            debug: false,
        };
        l.error("two\nlines");
        l.debug("hidden");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_default();
        assert_eq!(v["msg"], "two lines");
        assert_eq!(v["level"], "error");
    }
}
