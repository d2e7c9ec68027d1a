//! Making an accepted message durable, and addressing notices (bounces) to a sender.

use store::{Delivery, DeliveryReceipt};

use crate::{Deliverer, QueueError, Resolution, Target};

impl Deliverer {
    /// Stores `message` for `targets` in one durable transaction: local targets get a copy
    /// with `Return-Path: <sender>` prepended (RFC 5321 4.4, added at final delivery), remote
    /// targets one queue entry with the message as received. Returns once it is on disk.
    pub async fn deliver(
        &self,
        sender: Option<&str>,
        targets: &[Target],
        message: Vec<u8>,
    ) -> Result<DeliveryReceipt, QueueError> {
        let mut local = Vec::new();
        let mut remote = Vec::new();
        for t in targets {
            match t {
                Target::Local { account, .. } if !local.contains(account) => local.push(*account),
                Target::Local { .. } => {}
                Target::Remote(a) if !remote.contains(a) => remote.push(a.clone()),
                Target::Remote(_) => {}
            }
        }
        let return_path = format!("Return-Path: <{}>\r\n", sender.unwrap_or(""));
        let (local_data, remote_data) = match (local.is_empty(), remote.is_empty()) {
            (true, _) => (Vec::new(), message),
            // The common case: shift the bytes in place rather than copying a large body.
            (false, true) => {
                let mut v = message;
                v.splice(0..0, return_path.bytes());
                (v, Vec::new())
            }
            (false, false) => {
                let mut v = Vec::with_capacity(message.len() + return_path.len());
                v.extend_from_slice(return_path.as_bytes());
                v.extend_from_slice(&message);
                (v, message)
            }
        };
        let received = self.clock.now();
        let delivery = Delivery {
            sender: sender.map(str::to_string),
            local,
            local_data,
            remote_data,
            remote,
            received,
        };
        let receipt = self.store.deliver(delivery).await?;
        if receipt.queue_id.is_some() {
            self.queued.notify_one();
        }
        Ok(receipt)
    }

    /// A notice (DSN) from `<>` to `sender`, as a delivery to store with the attempt that
    /// caused it: into the INBOXes the sender's address resolves to here, or queued for a
    /// remote sender. `None` when the sender is a hosted address without a mailbox.
    pub async fn notice_delivery(
        &self,
        sender: &str,
        notice: Vec<u8>,
        now: i64,
    ) -> Result<Option<store::Delivery>, QueueError> {
        let (local, remote) = match self.resolve(sender).await? {
            Resolution::Deliver(targets) => {
                let mut local = Vec::new();
                let mut remote = Vec::new();
                for t in targets {
                    match t {
                        Target::Local { account, .. } if !local.contains(&account) => {
                            local.push(account)
                        }
                        Target::Local { .. } => {}
                        Target::Remote(a) if !remote.contains(&a) => remote.push(a),
                        Target::Remote(_) => {}
                    }
                }
                (local, remote)
            }
            Resolution::UnknownUser => {
                tracing::warn!("notice for <{sender}> dropped: no such local user");
                return Ok(None);
            }
            Resolution::NotLocal => (Vec::new(), vec![store::normalize_address(sender)]),
        };
        let local_data = if local.is_empty() {
            Vec::new()
        } else {
            let mut v = b"Return-Path: <>\r\n".to_vec();
            v.extend_from_slice(&notice);
            v
        };
        Ok(Some(store::Delivery {
            sender: None,
            local,
            local_data,
            remote_data: if remote.is_empty() {
                Vec::new()
            } else {
                notice
            },
            remote,
            received: now,
        }))
    }
}
