//! Progress bars for long operations: drawn on stderr when it is a terminal, hidden
//! otherwise (so scripts and tests stay quiet).

use std::io::IsTerminal;

/// A bar counting `len` layers, labelled `msg`.
pub fn layers(len: u64, msg: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} layers")
    {
        pb.set_style(style);
    }
    pb.set_message(msg.to_string());
    pb
}
