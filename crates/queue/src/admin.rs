//! Queue commands for the admin CLI that need more than the store: deleting an entry with a
//! bounce to its sender.

use store::{QueueOutcome, QueueUpdate, RecipientResult, RecipientStatus};

use crate::relay::dsn::{self, Action};
use crate::relay::runner::dsn_recipient;
use crate::{Deliverer, QueueError};

/// Gives up on queue entry `id`: every pending recipient is marked failed and the sender gets
/// a DSN (none for a null sender), stored in the same transaction that removes the entry.
/// Returns how many recipients were bounced. A delivery in progress may still reach the peer.
pub async fn bounce_entry(
    deliverer: &Deliverer,
    hostname: &str,
    id: i64,
    now: i64,
) -> Result<usize, QueueError> {
    let store = &deliverer.store;
    let entry = store
        .queue_entry(id)
        .await?
        .ok_or(QueueError::NoSuchEntry(id))?;
    let reason = "delivery cancelled by the administrator";
    let results: Vec<RecipientResult> = entry
        .pending()
        .map(|r| RecipientResult {
            address: r.address.clone(),
            status: RecipientStatus::Failed,
            error: Some(match &r.last_error {
                Some(last) => format!("{reason}; last error: {last}"),
                None => reason.into(),
            }),
            status_code: Some("5.0.0".into()),
            remote_mta: None,
        })
        .collect();
    let notice = match (&entry.sender, results.is_empty()) {
        (Some(sender), false) => {
            let original = store.read_blob(entry.blob).await?;
            let message = dsn::build(&dsn::Dsn {
                hostname,
                to: sender,
                queue_id: id,
                arrival: entry.created,
                now,
                retry_until: None,
                recipients: results
                    .iter()
                    .map(|r| dsn_recipient(r, Action::Failed))
                    .collect(),
                original: &original,
            });
            deliverer.notice_delivery(sender, message, now).await?
        }
        _ => None,
    };
    let bounced = results.len();
    let outcome = store
        .update_queue(QueueUpdate {
            id,
            results,
            next_attempt: now,
            attempted_at: None,
            warned: false,
            notice,
        })
        .await?;
    match outcome {
        QueueOutcome::Gone => Err(QueueError::NoSuchEntry(id)),
        QueueOutcome::Removed | QueueOutcome::Pending => Ok(bounced),
    }
}
