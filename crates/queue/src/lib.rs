//! Mail in and out of the store.
//!
//! Accepting: recipient resolution (accounts, aliases, `+tag`, catch-alls) and the one path by
//! which a message becomes durable, local copies into INBOXes and remote recipients onto the
//! outbound queue. SMTP and (later) webmail both submit through [`Deliverer`].
//!
//! Sending: the [`QueueRunner`] delivers queued mail to other hosts by MX lookup (or a
//! configured next hop / smarthost) over SMTP, retries temporary failures with backoff and
//! returns permanent ones to the sender as RFC 3464 bounces.
//!
//! # Layout
//! * `resolve`: [`Deliverer::resolve`] and its rules.
//! * `accept`: [`Deliverer::deliver`], and the delivery of notices (bounces).
//! * `relay`: the queue runner, DNS, routing, the SMTP client, DSNs.
//! * `admin`: queue commands for the CLI (`show`, `retry`, `delete` with or without bounce).
#![deny(missing_docs)]

mod accept;
mod admin;
mod relay;
mod resolve;

use std::sync::Arc;

use store::Store;
use tokio::sync::Notify;

pub use admin::bounce_entry;
pub use relay::{
    Clock, DnsError, HickoryResolver, Mx, NextHop, QueueRunner, RelaySettings, Resolver,
    RunnerHandle, ShiftedClock, Smarthost, SystemClock, Timeouts, opportunistic_tls,
};
pub use resolve::{Resolution, Target};

/// Why accepting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The store failed; nothing was stored.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// No such queue entry.
    #[error("queue entry {0} not found")]
    NoSuchEntry(i64),
}

/// Resolves recipients and stores accepted mail. Cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    quota: u64,
    /// Signalled whenever mail is queued, so the queue runner starts at once.
    queued: Arc<Notify>,
    /// Stamps accepted mail; the queue runner reads the same clock.
    clock: Arc<dyn Clock>,
}

impl Deliverer {
    /// A deliverer over `store`; `quota` is the per-account storage limit in octets (0: none).
    pub fn new(store: Store, quota: u64) -> Deliverer {
        Self::with_clock(store, quota, Arc::new(SystemClock))
    }

    /// [`Deliverer::new`] reading the time from `clock` (tests move it forward).
    pub fn with_clock(store: Store, quota: u64, clock: Arc<dyn Clock>) -> Deliverer {
        Deliverer {
            store,
            quota,
            queued: Arc::new(Notify::new()),
            clock,
        }
    }

    /// The clock this deliverer stamps mail with.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// What the queue runner waits on for new mail.
    pub fn queue_signal(&self) -> Arc<Notify> {
        self.queued.clone()
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
