//! The pipes the launcher and its children talk through: one [`Msg`] per line
//! (`u` user namespace ready, `g` go, `p<pid>` container started, `e<text>` error,
//! `d` done, `r` ready, `h` hooks), spelled only by [`Msg::encode`] and [`Msg::decode`].

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// A message between the launcher and the processes it forks (setup, guard, the
/// user-namespace helper of `rm`): one type so that each side sends and matches the
/// same thing instead of a letter spelled in several files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// `u`: the child's user namespace exists; the parent may write its id maps.
    UsernsReady,
    /// `g`: cgroup and id maps are in place; the child may go on.
    Go,
    /// `p<pid>`: the container process started with this pid (as the launcher sees it).
    Started(i32),
    /// `e<text>`: the setup failed; the text is the error to report.
    Error(String),
    /// `d`: the launcher cleaned up itself; the guard has nothing to do.
    Done,
    /// `r`: a created container's init is set up and waits on its exec fifo.
    Ready,
    /// `h`: a created container's init has its mounts and waits (for `g`) while the
    /// runtime runs the createRuntime hooks.
    Hooks,
    /// `n`: the container's network namespace exists; the setup process waits (for
    /// `g`) while the launcher starts its network helper (pasta, slirp4netns).
    NetnsReady,
}

impl Msg {
    /// The line for this message, without its newline (a newline in an error's text
    /// becomes a space, so a message is always one line).
    pub fn encode(&self) -> String {
        match self {
            Msg::UsernsReady => "u".into(),
            Msg::Go => "g".into(),
            Msg::Started(pid) => format!("p{pid}"),
            Msg::Error(text) => format!("e{}", text.replace('\n', " ")),
            Msg::Done => "d".into(),
            Msg::Ready => "r".into(),
            Msg::Hooks => "h".into(),
            Msg::NetnsReady => "n".into(),
        }
    }

    /// The message a line (without its newline) carries, if it is one.
    pub fn decode(line: &str) -> Option<Msg> {
        let mut chars = line.chars();
        let rest = {
            let first = chars.next()?;
            (first, chars.as_str())
        };
        match rest {
            ('u', "") => Some(Msg::UsernsReady),
            ('g', "") => Some(Msg::Go),
            ('d', "") => Some(Msg::Done),
            ('r', "") => Some(Msg::Ready),
            ('h', "") => Some(Msg::Hooks),
            ('n', "") => Some(Msg::NetnsReady),
            ('p', pid) => pid.parse().ok().map(Msg::Started),
            ('e', text) => Some(Msg::Error(text.to_string())),
            _ => None,
        }
    }
}

/// A line read from a channel that is no [`Msg`]: a peer speaking another protocol.
#[derive(Debug)]
pub struct BadMessage(
    /// The line, without its newline.
    pub String,
);

impl std::fmt::Display for BadMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad message {:?} from the setup process", self.0)
    }
}

impl std::error::Error for BadMessage {}

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
    /// Sends one message.
    pub fn send(&mut self, msg: &Msg) -> Result<()> {
        let w = self.writer.as_mut().context("channel has no write end")?;
        w.write_all(format!("{}\n", msg.encode()).as_bytes())
            .context("writing to the launcher pipe")
    }

    /// Receives one message; `None` at end of file (the other side exited or closed),
    /// a [`BadMessage`] error for a line that is none.
    pub fn recv(&mut self) -> Result<Option<Msg>> {
        let r = self.reader.as_mut().context("channel has no read end")?;
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .context("reading the launcher pipe")?;
        if n == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches('\n');
        match Msg::decode(line) {
            Some(m) => Ok(Some(m)),
            None => Err(BadMessage(line.to_string()).into()),
        }
    }

    /// Receives one message, waiting at most `timeout` for it to start: a child
    /// waits on its parent's word this way (woken by the pipe) instead of polling for
    /// the parent's work to show. `Ok(None)` at end of file; an error when time is up.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Msg>> {
        let deadline = Instant::now() + timeout;
        let r = self.reader.as_ref().context("channel has no read end")?;
        if r.buffer().is_empty() {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let wait = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
                let mut fds = [PollFd::new(r.get_ref().as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, wait) {
                    Ok(0) if Instant::now() >= deadline => {
                        bail!("no message on the launcher pipe within {timeout:?}")
                    }
                    Ok(0) | Err(nix::errno::Errno::EINTR) => {}
                    Ok(_) => break,
                    Err(e) => return Err(e).context("polling the launcher pipe"),
                }
            }
        }
        self.recv()
    }

    /// Receives one message and checks it is `want`; an [`Msg::Error`] becomes that error.
    pub fn expect(&mut self, want: &Msg) -> Result<()> {
        let line = match self.recv() {
            Ok(Some(m)) if &m == want => return Ok(()),
            Ok(Some(Msg::Error(text))) => bail!("{text}"),
            Ok(Some(m)) => m.encode(),
            Ok(None) => bail!("the container setup process exited early"),
            Err(e) => match e.downcast::<BadMessage>() {
                Ok(BadMessage(line)) => line,
                Err(e) => return Err(e),
            },
        };
        bail!("unexpected message {line:?} from the container setup")
    }

    /// Moves this channel's ends out, leaving it with none (a forked child takes the
    /// channel its parent borrowed).
    pub fn take(&mut self) -> Channel {
        Channel {
            reader: self.reader.take(),
            writer: self.writer.take(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        for m in [
            Msg::UsernsReady,
            Msg::Go,
            Msg::Started(4242),
            Msg::Started(-1),
            Msg::Error("mount: no such file".into()),
            Msg::Error(String::new()),
            Msg::Done,
            Msg::Ready,
            Msg::Hooks,
            Msg::NetnsReady,
        ] {
            assert_eq!(Msg::decode(&m.encode()), Some(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn the_wire_spelling_is_kept() {
        assert_eq!(Msg::UsernsReady.encode(), "u");
        assert_eq!(Msg::Go.encode(), "g");
        assert_eq!(Msg::Started(7).encode(), "p7");
        assert_eq!(Msg::Done.encode(), "d");
        assert_eq!(Msg::Ready.encode(), "r");
        assert_eq!(Msg::Error("a\nb".into()).encode(), "ea b");
    }

    #[test]
    fn other_lines_are_no_message() {
        for line in ["", "x", "ug", "p", "pid", "p1x", "dd"] {
            assert_eq!(Msg::decode(line), None, "{line:?}");
        }
    }

    #[test]
    fn messages_cross_a_pipe() {
        let p = Pipe::new().unwrap_or_else(|e| panic!("{e}"));
        let mut ch = Channel {
            reader: Some(BufReader::new(std::fs::File::from(p.r))),
            writer: Some(std::fs::File::from(p.w)),
        };
        for m in [Msg::Started(12), Msg::Error("two\nlines".into()), Msg::Go] {
            ch.send(&m).unwrap_or_else(|e| panic!("{e}"));
        }
        ch.writer = None;
        assert_eq!(ch.recv().ok().flatten(), Some(Msg::Started(12)));
        let err = ch.expect(&Msg::Go).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("two lines"));
        assert!(ch.expect(&Msg::Go).is_ok());
        assert_eq!(ch.recv().ok().flatten(), None);
    }

    #[test]
    fn recv_timeout_wakes_on_a_message_and_gives_up_in_time() {
        let p = Pipe::new().unwrap_or_else(|e| panic!("{e}"));
        let mut ch = Channel {
            reader: Some(BufReader::new(std::fs::File::from(p.r))),
            writer: Some(std::fs::File::from(p.w)),
        };
        let start = Instant::now();
        assert!(ch.recv_timeout(Duration::from_millis(50)).is_err());
        assert!(start.elapsed() >= Duration::from_millis(50));
        ch.send(&Msg::Go).unwrap_or_else(|e| panic!("{e}"));
        ch.send(&Msg::Done).unwrap_or_else(|e| panic!("{e}"));
        let long = Duration::from_secs(5);
        assert_eq!(ch.recv_timeout(long).ok().flatten(), Some(Msg::Go));
        // The second line is already buffered.
        assert_eq!(ch.recv_timeout(long).ok().flatten(), Some(Msg::Done));
        ch.writer = None;
        assert_eq!(ch.recv_timeout(long).ok().flatten(), None);
        assert!(start.elapsed() < long);
    }
}
