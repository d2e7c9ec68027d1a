//! Making an accepted message durable.

use std::time::{SystemTime, UNIX_EPOCH};

use store::{Delivery, DeliveryReceipt};

use crate::{Deliverer, QueueError, Target};

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
        let received = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let delivery = Delivery {
            sender: sender.map(str::to_string),
            local,
            local_data,
            remote_data,
            remote,
            received,
        };
        Ok(self.store.deliver(delivery).await?)
    }
}
