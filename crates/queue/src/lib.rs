//! Accepting mail: recipient resolution (accounts, aliases, `+tag`, catch-alls) and the one
//! path by which a message becomes durable, local copies into INBOXes and remote recipients
//! onto the outbound queue. SMTP and (later) webmail both submit through [`Deliverer`].
//! The queue runner that sends queued mail to other hosts is a later addition to this crate.
//!
//! # Layout
//! * `resolve`: [`Deliverer::resolve`] and its rules.
//! * `accept`: [`Deliverer::deliver`].
#![deny(missing_docs)]

mod accept;
mod resolve;

use store::Store;

pub use resolve::{Resolution, Target};

/// Why accepting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The store failed; nothing was stored.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Resolves recipients and stores accepted mail. Cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
}

impl Deliverer {
    /// A deliverer over `store`.
    pub fn new(store: Store) -> Deliverer {
        Deliverer { store }
    }

    /// Whether `domain` (any case) is hosted here.
    pub async fn is_local_domain(&self, domain: &str) -> Result<bool, QueueError> {
        Ok(self.store.is_local_domain(&domain.to_lowercase()).await?)
    }
}
