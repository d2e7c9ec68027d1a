//! Mailbox and message operations of the embedded backend, as plain functions over a
//! connection (called inside writer jobs or reader closures), plus the change notifier.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

use super::{MessageRow, insert_mailbox, insert_message};
use crate::types::*;
use crate::{Result, StoreError};

const MAILBOX_COLUMNS: &str = "m.id, m.account_id, m.name, m.special_use, m.uid_validity, m.uid_next,
    m.highest_modseq, EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = m.account_id AND s.name = m.name),
    (SELECT count(*) FROM messages WHERE mailbox_id = m.id)";

fn mailbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Mailbox> {
    Ok(Mailbox {
        id: MailboxId(r.get(0)?),
        account: AccountId(r.get(1)?),
        name: r.get(2)?,
        special_use: r.get(3)?,
        uid_validity: r.get(4)?,
        uid_next: r.get(5)?,
        highest_modseq: r.get::<_, i64>(6)? as u64,
        subscribed: r.get(7)?,
        messages: r.get(8)?,
    })
}

pub(super) fn list(c: &Connection, account: AccountId) -> Result<Vec<Mailbox>> {
    let sql = format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account_id = ?1 ORDER BY m.name"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map([account.0], mailbox_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn by_id(c: &Connection, mailbox: MailboxId) -> Result<Mailbox> {
    let sql = format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.id = ?1");
    c.prepare_cached(&sql)?
        .query_row([mailbox.0], mailbox_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", mailbox.0)))
}

pub(super) fn by_name(c: &Connection, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
    let sql = format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account_id = ?1 AND m.name = ?2"
    );
    Ok(c.prepare_cached(&sql)?
        .query_row(params![account.0, name], mailbox_row)
        .optional()?)
}

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageMeta> {
    let keywords: String = r.get(5)?;
    Ok(MessageMeta {
        uid: r.get(0)?,
        blob: BlobId(r.get(1)?),
        size: r.get::<_, i64>(2)? as u64,
        internal_date: r.get(3)?,
        flags: Flags {
            system: r.get(4)?,
            keywords: keywords.split_whitespace().map(str::to_string).collect(),
        },
        modseq: r.get::<_, i64>(6)? as u64,
    })
}

const MESSAGE_COLUMNS: &str = "uid, blob_id, size, internal_date, flags, keywords, modseq";

pub(super) fn messages(c: &Connection, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?1 ORDER BY uid");
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map([mailbox.0], message_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The messages of `uids` (ascending) that exist: one range scan when the UIDs are dense (a
/// list page, `1:*`), point reads when they are sparse.
pub(super) fn messages_by_uid(
    c: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<MessageMeta>> {
    let (Some(&first), Some(&last)) = (uids.first(), uids.last()) else {
        return Ok(Vec::new());
    };
    if (last - first) as usize / 4 <= uids.len() {
        let mut out = Vec::with_capacity(uids.len());
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid"
        );
        let mut stmt = c.prepare_cached(&sql)?;
        let mut wanted = uids.iter().peekable();
        for m in stmt.query_map(params![mailbox.0, first, last], message_row)? {
            let m = m?;
            while wanted.next_if(|u| **u < m.uid).is_some() {}
            if wanted.next_if(|u| **u == m.uid).is_some() {
                out.push(m);
            }
        }
        Ok(out)
    } else {
        load(c, mailbox, uids)
    }
}

pub(super) fn snapshot(c: &Connection, mailbox: MailboxId) -> Result<MailboxSnapshot> {
    // One read transaction: the mailbox row and the message list agree.
    c.execute_batch("BEGIN")?;
    let result = (|| {
        let mailbox = by_id(c, mailbox)?;
        let mut uids = Vec::with_capacity(mailbox.messages as usize);
        let mut first_unseen = None;
        let mut keywords = std::collections::BTreeSet::new();
        let mut stmt = c.prepare_cached(
            "SELECT uid, flags & 1, keywords FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
        )?;
        let mut rows = stmt.query([mailbox.id.0])?;
        while let Some(r) = rows.next()? {
            let uid: Uid = r.get(0)?;
            uids.push(uid);
            if first_unseen.is_none() && r.get::<_, i64>(1)? == 0 {
                first_unseen = Some(uid);
            }
            if let rusqlite::types::ValueRef::Text(k) = r.get_ref(2)?
                && !k.is_empty()
            {
                for word in String::from_utf8_lossy(k).split_whitespace() {
                    if !keywords.contains(word) {
                        keywords.insert(word.to_string());
                    }
                }
            }
        }
        Ok(MailboxSnapshot {
            mailbox,
            uids,
            first_unseen,
            // One spelling per keyword: they are case-insensitive (RFC 9051 2.3.2).
            keywords: {
                let mut lower = std::collections::HashSet::new();
                keywords
                    .into_iter()
                    .filter(|k| lower.insert(k.to_ascii_lowercase()))
                    .collect()
            },
        })
    })();
    c.execute_batch("COMMIT")?;
    result
}

pub(super) fn listing(
    c: &Connection,
    log: &super::BlobLog,
    mailbox: MailboxId,
) -> Result<MessageListing> {
    // One read transaction: the mailbox row and the message list agree.
    c.execute_batch("BEGIN")?;
    let result = (|| {
        let mailbox = by_id(c, mailbox)?;
        let mut messages = Vec::with_capacity(mailbox.messages as usize);
        let mut stmt = c.prepare_cached(
            "SELECT uid, blob_id, size, canonical_size FROM messages
             WHERE mailbox_id = ?1 ORDER BY uid",
        )?;
        let mut rows = stmt.query([mailbox.id.0])?;
        while let Some(r) = rows.next()? {
            let blob = BlobId(r.get(1)?);
            let canonical = match r.get::<_, Option<i64>>(3)? {
                Some(n) => n as u64,
                // Only where the migration found no blob_lines row (an older binary's).
                None => canonical_size(&super::blob_data(c, log, blob.0)?),
            };
            messages.push(ListedMessage {
                uid: r.get(0)?,
                blob,
                size: r.get::<_, i64>(2)? as u64,
                canonical_size: canonical,
            });
        }
        Ok(MessageListing { mailbox, messages })
    })();
    c.execute_batch("COMMIT")?;
    result
}

pub(super) fn changes_since(
    c: &Connection,
    mailbox: MailboxId,
    modseq: u64,
) -> Result<MailboxChanges> {
    c.execute_batch("BEGIN")?;
    let result = (|| {
        let mb = by_id(c, mailbox)?;
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid"
        );
        let changed = c
            .prepare_cached(&sql)?
            .query_map(params![mailbox.0, modseq as i64], message_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let expunged = c
            .prepare_cached(
                "SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
            )?
            .query_map(params![mailbox.0, modseq as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<Uid>>>()?;
        Ok(MailboxChanges {
            mailbox: mb,
            changed,
            expunged,
        })
    })();
    c.execute_batch("COMMIT")?;
    result
}

pub(super) fn status(c: &Connection, mailbox: MailboxId) -> Result<MailboxStatus> {
    Ok(c.prepare_cached(
        "SELECT count(*), coalesce(sum(flags & 1 = 0), 0), coalesce(sum(size), 0), coalesce(sum(flags & 8 != 0), 0)
         FROM messages WHERE mailbox_id = ?1",
    )?
    .query_row([mailbox.0], |r| {
        Ok(MailboxStatus {
            messages: r.get(0)?,
            unseen: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            deleted: r.get(3)?,
        })
    })?)
}

pub(super) fn create(
    c: &Connection,
    account: AccountId,
    name: &str,
    special: Option<&str>,
) -> Result<MailboxId> {
    Ok(MailboxId(insert_mailbox(c, account.0, name, special)?))
}

fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// Bumps the mailbox's HIGHESTMODSEQ and returns the new value.
fn next_modseq(c: &Connection, mailbox: MailboxId) -> Result<u64> {
    let m: i64 = c
        .prepare_cached("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?1 RETURNING highest_modseq")?
        .query_row([mailbox.0], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", mailbox.0)))?;
    Ok(m as u64)
}

/// Deletes the given messages, records them as expunged at one new MODSEQ, and collects blobs.
pub(super) fn remove_messages(c: &Connection, mailbox: MailboxId, uids: &[Uid]) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let modseq = next_modseq(c, mailbox)?;
    let mut blobs = Vec::with_capacity(uids.len());
    {
        let mut del = c.prepare_cached(
            "DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2 RETURNING blob_id",
        )?;
        let mut rec = c.prepare_cached(
            "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)
             ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq",
        )?;
        for uid in uids {
            if let Some(blob) = del
                .query_row(params![mailbox.0, uid], |r| r.get::<_, i64>(0))
                .optional()?
            {
                blobs.push(blob);
                rec.execute(params![mailbox.0, uid, modseq as i64])?;
            }
        }
    }
    blobs.sort_unstable();
    blobs.dedup();
    super::collect_blobs(c, &blobs)
}

pub(super) fn delete(c: &Connection, account: AccountId, name: &str) -> Result<MailboxId> {
    if is_inbox(name) {
        return Err(StoreError::Conflict("INBOX cannot be deleted".into()));
    }
    let mb = by_name(c, account, name)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
    let blobs: Vec<i64> = c
        .prepare("SELECT DISTINCT blob_id FROM messages WHERE mailbox_id = ?1")?
        .query_map([mb.id.0], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    c.execute("DELETE FROM messages WHERE mailbox_id = ?1", [mb.id.0])?;
    c.execute("DELETE FROM expunged WHERE mailbox_id = ?1", [mb.id.0])?;
    c.execute("DELETE FROM mailboxes WHERE id = ?1", [mb.id.0])?;
    super::collect_blobs(c, &blobs)?;
    Ok(mb.id)
}

pub(super) fn rename(
    c: &Connection,
    account: AccountId,
    from: &str,
    to: &str,
) -> Result<Vec<MailboxId>> {
    if by_name(c, account, to)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {to}")));
    }
    let src = by_name(c, account, from)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {from}")))?;
    if is_inbox(from) {
        // RFC 9051 6.3.6: renaming INBOX moves its messages into a new mailbox; INBOX stays, empty.
        let dst = create(c, account, to, None)?;
        let uids: Vec<Uid> = messages(c, src.id)?.iter().map(|m| m.uid).collect();
        copy(c, src.id, &uids, dst, true)?;
        return Ok(vec![src.id, dst]);
    }
    let children_prefix = format!("{from}/");
    let mut stmt = c.prepare("SELECT id, name FROM mailboxes WHERE account_id = ?1")?;
    let all: Vec<(i64, String)> = stmt
        .query_map([account.0], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut renamed = Vec::new();
    for (id, name) in all {
        let new = if name == from {
            to.to_string()
        } else if let Some(rest) = name.strip_prefix(&children_prefix) {
            format!("{to}/{rest}")
        } else {
            continue;
        };
        if by_name(c, account, &new)?.is_some() {
            return Err(StoreError::AlreadyExists(format!("mailbox {new}")));
        }
        c.execute(
            "UPDATE mailboxes SET name = ?2 WHERE id = ?1",
            params![id, new],
        )?;
        c.execute(
            "UPDATE subscriptions SET name = ?3 WHERE account_id = ?1 AND name = ?2",
            params![account.0, name, new],
        )?;
        renamed.push(MailboxId(id));
    }
    Ok(renamed)
}

pub(super) fn set_subscribed(
    c: &Connection,
    account: AccountId,
    name: &str,
    on: bool,
) -> Result<()> {
    if on {
        c.execute(
            "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?1, ?2)",
            params![account.0, name],
        )?;
    } else {
        c.execute(
            "DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2",
            params![account.0, name],
        )?;
    }
    Ok(())
}

pub(super) fn subscriptions(c: &Connection, account: AccountId) -> Result<Vec<String>> {
    let mut stmt =
        c.prepare_cached("SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name")?;
    let rows = stmt.query_map([account.0], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

fn load(c: &Connection, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<MessageMeta>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    let mut stmt = c.prepare_cached(&sql)?;
    let mut out = Vec::with_capacity(uids.len());
    for uid in uids {
        if let Some(m) = stmt
            .query_row(params![mailbox.0, uid], message_row)
            .optional()?
        {
            out.push(m);
        }
    }
    Ok(out)
}

pub(super) fn store_flags(
    c: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
    op: FlagOp,
    flags: &Flags,
    unchanged_since: Option<u64>,
) -> Result<FlagUpdate> {
    let mut result = FlagUpdate::default();
    let mut modseq = None;
    let mut update = c.prepare_cached("UPDATE messages SET flags = ?3, keywords = ?4, modseq = ?5 WHERE mailbox_id = ?1 AND uid = ?2")?;
    for mut m in load(c, mailbox, uids)? {
        if unchanged_since.is_some_and(|since| m.modseq > since) {
            // RFC 7162 3.1.3: fails the conditional store for this message.
            result.modified.push(m.uid);
            continue;
        }
        let new = apply(&m.flags, op, flags);
        if new == m.flags {
            result.unchanged.push(m);
            continue;
        }
        let ms = match modseq {
            Some(ms) => ms,
            None => *modseq.insert(next_modseq(c, mailbox)?),
        };
        update.execute(params![
            mailbox.0,
            m.uid,
            new.system,
            new.keywords.join(" "),
            ms as i64
        ])?;
        m.flags = new;
        m.modseq = ms;
        result.updated.push(m);
    }
    Ok(result)
}

fn apply(old: &Flags, op: FlagOp, f: &Flags) -> Flags {
    let lower = |v: &[String]| v.iter().map(|k| k.to_ascii_lowercase()).collect::<Vec<_>>();
    match op {
        FlagOp::Replace => f.clone(),
        FlagOp::Add => {
            let mut n = old.clone();
            n.system |= f.system;
            let have = lower(&n.keywords);
            for k in &f.keywords {
                if !have.contains(&k.to_ascii_lowercase()) {
                    n.keywords.push(k.clone());
                }
            }
            n
        }
        FlagOp::Remove => {
            let drop = lower(&f.keywords);
            Flags {
                system: old.system & !f.system,
                keywords: old
                    .keywords
                    .iter()
                    .filter(|k| !drop.contains(&k.to_ascii_lowercase()))
                    .cloned()
                    .collect(),
            }
        }
    }
}

pub(super) fn expunge(
    c: &Connection,
    mailbox: MailboxId,
    only: Option<&[Uid]>,
) -> Result<Vec<Uid>> {
    let mut uids: Vec<Uid> = c
        .prepare_cached(
            "SELECT uid FROM messages WHERE mailbox_id = ?1 AND flags & 8 != 0 ORDER BY uid",
        )?
        .query_map([mailbox.0], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some(only) = only {
        uids.retain(|u| only.binary_search(u).is_ok());
    }
    remove_messages(c, mailbox, &uids)?;
    Ok(uids)
}

pub(super) fn expunge_uids(
    c: &Connection,
    mailbox: MailboxId,
    mut uids: Vec<Uid>,
) -> Result<Vec<Uid>> {
    uids.sort_unstable();
    uids.dedup();
    let present: Vec<Uid> = messages_by_uid(c, mailbox, &uids)?
        .iter()
        .map(|m| m.uid)
        .collect();
    remove_messages(c, mailbox, &present)?;
    Ok(present)
}

pub(super) fn copy(
    c: &Connection,
    from: MailboxId,
    uids: &[Uid],
    to: MailboxId,
    remove: bool,
) -> Result<CopyResult> {
    let src = by_id(c, from)?;
    let dst = by_id(c, to)?;
    if src.account != dst.account {
        return Err(StoreError::Conflict("copy between accounts".into()));
    }
    let mut pairs = Vec::new();
    let mut canonical =
        c.prepare_cached("SELECT canonical_size FROM messages WHERE mailbox_id = ?1 AND uid = ?2")?;
    for m in load(c, from, uids)? {
        let canonical_size: Option<i64> =
            canonical.query_row(params![from.0, m.uid], |r| r.get(0))?;
        let row = MessageRow {
            blob: m.blob.0,
            size: m.size as usize,
            canonical_size: canonical_size.map(|n| n as u64),
            internal_date: m.internal_date,
            flags: &m.flags,
        };
        let new_uid = insert_message(c, to.0, &row)?;
        pairs.push((m.uid, new_uid));
    }
    if remove {
        let moved: Vec<Uid> = pairs.iter().map(|(s, _)| *s).collect();
        remove_messages(c, from, &moved)?;
    }
    Ok(CopyResult {
        uid_validity: dst.uid_validity,
        pairs,
    })
}

/// Wakes sessions watching a mailbox after this process commits a change to it.
#[derive(Default)]
pub(super) struct Notifier {
    senders: Mutex<HashMap<MailboxId, watch::Sender<u64>>>,
}

impl Notifier {
    pub(super) fn watch(&self, mailbox: MailboxId) -> watch::Receiver<u64> {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders
            .entry(mailbox)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub(super) fn bump(&self, mailboxes: &[MailboxId]) {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        for mb in mailboxes {
            if let Some(tx) = senders.get(mb) {
                if tx.receiver_count() == 0 {
                    senders.remove(mb);
                } else {
                    tx.send_modify(|v| *v += 1);
                }
            }
        }
    }
}
