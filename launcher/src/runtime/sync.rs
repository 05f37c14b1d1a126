//! The pipes the launcher and its children talk through: one message per line
//! (`u` user namespace ready, `g` go, `p<pid>` container started, `e<text>` error).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;

use anyhow::{Context, Result, bail};

/// One direction of a channel between two processes.
pub struct Channel {
    reader: Option<BufReader<std::fs::File>>,
    writer: Option<std::fs::File>,
}

/// A pipe with both ends; after fork each side keeps one with [`Pipe::reader`] or
/// [`Pipe::writer`].
pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

impl Pipe {
    /// A new close-on-exec pipe.
    pub fn new() -> Result<Pipe> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?;
        Ok(Pipe { r, w })
    }

    /// Keeps the read end (closing the write end).
    pub fn reader(self) -> Channel {
        Channel {
            reader: Some(BufReader::new(std::fs::File::from(self.r))),
            writer: None,
        }
    }

    /// Keeps the write end (closing the read end).
    pub fn writer(self) -> Channel {
        Channel {
            reader: None,
            writer: Some(std::fs::File::from(self.w)),
        }
    }
}

impl Channel {
    /// Sends one line.
    pub fn send(&mut self, msg: &str) -> Result<()> {
        let w = self.writer.as_mut().context("channel has no write end")?;
        w.write_all(format!("{}\n", msg.replace('\n', " ")).as_bytes())
            .context("writing to the launcher pipe")
    }

    /// Receives one line; `None` at end of file (the other side exited or closed).
    pub fn recv(&mut self) -> Result<Option<String>> {
        let r = self.reader.as_mut().context("channel has no read end")?;
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .context("reading the launcher pipe")?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(line.trim_end_matches('\n').to_string()))
    }

    /// Receives one line and checks it is `want`; an `e...` line becomes that error.
    pub fn expect(&mut self, want: &str) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(m) if m.starts_with('e') => bail!("{}", &m[1..]),
            Some(m) => bail!("unexpected message {m:?} from the container setup"),
            None => bail!("the container setup process exited early"),
        }
    }

    /// Blocks until the other side closes (returns what was read, if anything).
    pub fn wait_closed(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Some(r) = self.reader.as_mut() {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    }
}
