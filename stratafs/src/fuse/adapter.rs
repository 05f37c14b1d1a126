//! `fuser::Filesystem` for the handshake alone: fuser mounts and answers INIT (with
//! what `OverlayFs::init` asks for); every request after it is served by
//! `crate::transport` (its `/dev/fuse` loop, or its io_uring queues).

use std::sync::Arc;

use fuser::{Filesystem, KernelConfig, Request};

use super::OverlayFs;

/// The overlay as fuser sees it during the handshake.
#[derive(Debug)]
pub struct FuseAdapter(pub Arc<OverlayFs>);

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        self.0.init(config)
    }
}
