//! Producer ids, reserved from the metadata image in blocks, so an id is never handed out twice,
//! even across restarts and brokers (idempotence and transaction state on disk are keyed by it).

use std::ops::Range;
use std::sync::{Arc, Mutex};

use strom_controller::{Controller, ControllerError};
use strom_metadata::MetadataRecord;

use crate::sync::lock;

const BLOCK: i64 = 1000;

pub struct ProducerIds {
    metadata: Arc<Controller>,
    block: Mutex<Range<i64>>,
    /// One reservation at a time.
    refill: tokio::sync::Mutex<()>,
}

impl ProducerIds {
    pub fn new(metadata: Arc<Controller>) -> Self {
        ProducerIds { metadata, block: Mutex::new(0..0), refill: tokio::sync::Mutex::new(()) }
    }

    /// A fresh id.
    pub async fn next(&self) -> Result<i64, ControllerError> {
        loop {
            if let Some(id) = self.take() {
                return Ok(id);
            }
            self.ensure_available().await?;
        }
    }

    /// An id from the reserved block, without waiting: `None` when it is used up (call
    /// `ensure_available` first where waiting is impossible, as inside the transaction
    /// coordinator's lock).
    pub fn take(&self) -> Option<i64> {
        let mut block = lock(&self.block);
        let id = block.start;
        (id < block.end).then(|| {
            block.start += 1;
            id
        })
    }

    /// Reserves a new block from the controller if the current one is used up.
    pub async fn ensure_available(&self) -> Result<(), ControllerError> {
        let _one = self.refill.lock().await;
        if !lock(&self.block).is_empty() {
            return Ok(());
        }
        let image = self
            .metadata
            .commit::<std::convert::Infallible>(|img| Ok(vec![MetadataRecord::ProducerIdsAllocated { next_producer_id: img.next_producer_id + BLOCK }]))
            .await?
            .unwrap_or_else(|never| match never {});
        *lock(&self.block) = image.next_producer_id - BLOCK..image.next_producer_id;
        Ok(())
    }
}
