//! The outbound queue's rows: reading entries, claiming due ones (a lease), recording attempt
//! results and removing finished entries. Every function runs inside a read or a write job.

use rusqlite::{Connection, params};

use super::collect_blobs;
use crate::types::*;
use crate::{Result, StoreError};

const ENTRY_COLUMNS: &str = "id, sender, blob_id, size, created, next_attempt, attempts, \
                             last_attempt, leased, warned";

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueEntry> {
    Ok(QueueEntry {
        id: r.get(0)?,
        sender: r.get(1)?,
        recipients: Vec::new(),
        blob: BlobId(r.get(2)?),
        size: r.get::<_, i64>(3)? as u64,
        created: r.get(4)?,
        next_attempt: r.get(5)?,
        attempts: r.get(6)?,
        last_attempt: r.get(7)?,
        leased: r.get::<_, i64>(8)? != 0,
        warned: r.get::<_, i64>(9)? != 0,
    })
}

fn fill_recipients(c: &Connection, entries: &mut [QueueEntry]) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "SELECT address, status, last_error, status_code, remote_mta FROM queue_recipients
         WHERE queue_id = ?1 ORDER BY address",
    )?;
    for e in entries {
        e.recipients = stmt
            .query_map([e.id], |r| {
                Ok(QueueRecipient {
                    address: r.get(0)?,
                    status: RecipientStatus::parse(&r.get::<_, String>(1)?),
                    last_error: r.get(2)?,
                    status_code: r.get(3)?,
                    remote_mta: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
    }
    Ok(())
}

/// Every entry (oldest first), or the one with `id`.
pub(super) fn entries(c: &Connection, id: Option<i64>) -> Result<Vec<QueueEntry>> {
    let mut entries = match id {
        Some(id) => c
            .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM queue WHERE id = ?1"))?
            .query_map([id], entry_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => c
            .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM queue ORDER BY id"))?
            .query_map([], entry_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    fill_recipients(c, &mut entries)?;
    Ok(entries)
}

/// Leases up to `limit` due entries until `lease_until` and returns them.
pub(super) fn claim(
    c: &Connection,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> Result<Vec<QueueEntry>> {
    let mut entries = c
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM queue WHERE next_attempt <= ?1
             ORDER BY next_attempt, id LIMIT ?2"
        ))?
        .query_map(params![now, limit as i64], entry_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut lease =
        c.prepare_cached("UPDATE queue SET leased = 1, next_attempt = ?2 WHERE id = ?1")?;
    for e in &mut entries {
        lease.execute(params![e.id, lease_until])?;
        e.leased = true;
        e.next_attempt = lease_until;
    }
    fill_recipients(c, &mut entries)?;
    Ok(entries)
}

/// Applies an attempt's results; removes the entry if nothing is pending any more.
pub(super) fn update(c: &Connection, u: &QueueUpdate) -> Result<QueueOutcome> {
    let exists = c
        .prepare_cached("SELECT 1 FROM queue WHERE id = ?1")?
        .exists([u.id])?;
    if !exists {
        return Ok(QueueOutcome::Gone);
    }
    let mut set = c.prepare_cached(
        "UPDATE queue_recipients SET status = ?3, last_error = ?4, status_code = ?5, remote_mta = ?6
         WHERE queue_id = ?1 AND address = ?2 AND status = 'pending'",
    )?;
    for r in &u.results {
        set.execute(params![
            u.id,
            r.address,
            r.status.as_str(),
            r.error,
            r.status_code,
            r.remote_mta
        ])?;
    }
    let pending = c
        .prepare_cached(
            "SELECT 1 FROM queue_recipients WHERE queue_id = ?1 AND status = 'pending' LIMIT 1",
        )?
        .exists([u.id])?;
    if !pending {
        remove(c, u.id)?;
        return Ok(QueueOutcome::Removed);
    }
    c.prepare_cached(
        "UPDATE queue SET leased = 0, next_attempt = ?2,
           attempts = attempts + (?3 IS NOT NULL), last_attempt = coalesce(?3, last_attempt),
           warned = warned OR ?4
         WHERE id = ?1",
    )?
    .execute(params![u.id, u.next_attempt, u.attempted_at, u.warned])?;
    Ok(QueueOutcome::Pending)
}

/// Deletes an entry, its recipients and (if nothing else uses it) its blob.
pub(super) fn remove(c: &Connection, id: i64) -> Result<bool> {
    let blob: Option<i64> = c
        .prepare_cached("DELETE FROM queue WHERE id = ?1 RETURNING blob_id")?
        .query_row([id], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(StoreError::Database(e)),
        })?;
    let Some(blob) = blob else {
        return Ok(false);
    };
    // ON DELETE CASCADE needs foreign_keys, which every connection turns on; be explicit anyway.
    c.prepare_cached("DELETE FROM queue_recipients WHERE queue_id = ?1")?
        .execute([id])?;
    collect_blobs(c, &[blob])?;
    Ok(true)
}
