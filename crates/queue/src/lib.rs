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
    quota: u64,
}

impl Deliverer {
    /// A deliverer over `store`; `quota` is the per-account storage limit in octets (0: none).
    pub fn new(store: Store, quota: u64) -> Deliverer {
        Deliverer { store, quota }
    }

    /// Whether storing `extra` more octets would put `account` over its quota.
    pub async fn over_quota(
        &self,
        account: store::AccountId,
        extra: u64,
    ) -> Result<bool, QueueError> {
        if self.quota == 0 {
            return Ok(false);
        }
        Ok(self
            .store
            .account_usage(account)
            .await?
            .saturating_add(extra)
            > self.quota)
    }

    /// Whether `domain` (any case) is hosted here.
    pub async fn is_local_domain(&self, domain: &str) -> Result<bool, QueueError> {
        Ok(self.store.is_local_domain(&domain.to_lowercase()).await?)
    }
}
