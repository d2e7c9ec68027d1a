//! The embedded backend: one SQLite database (`postern.db`) in WAL mode.
//!
//! Implementation notes:
//! * Writes go through [`writer::Writer`] (group commit, `synchronous=FULL`).
//! * Reads use a small pool of read-only connections on blocking threads; WAL lets them run
//!   while the writer commits.
//! * A checkpointer thread copies the WAL back into the database in the background, woken by
//!   the writer when the WAL grows, so commits rarely pay for checkpoints; past a hard bound the
//!   writer finishes the checkpoint itself so the WAL restarts and stays bounded.
//! * Several processes may open the same database (the admin CLI while the server runs);
//!   SQLite's locking and `busy_timeout` serialise their writes.

mod blob_log;
mod mailboxes;
mod queue;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::config::DbConfig;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::types::*;
use crate::{Backend, Result, StoreError};
use blob_log::{BlobLog, Location};
use writer::Writer;

const DB_FILE: &str = "postern.db";
/// The blob log's directory, beside the database.
const BLOB_DIR: &str = "blobs";
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 16;

pub(crate) struct Embedded {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    notifier: mailboxes::Notifier,
    log: Arc<BlobLog>,
    /// Deliveries and appends started by this process ([`Backend::store_activity`]).
    activity: AtomicU64,
    /// Where the background summarising pass continues: below this blob id (None: from the
    /// newest). See `summarize_pending`.
    summary_cursor: Mutex<Option<i64>>,
}

/// Up to this many indexed point reads (a list page) run on the caller's thread, like
/// [`Embedded::lookup`]; more go to the blocking pool.
const INLINE_POINT_READS: usize = 128;
/// Blobs up to this size are read on the caller's thread too.
const INLINE_BLOB: usize = 64 * 1024;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(30))?;
    // The store has some seventy cached statements; rusqlite keeps 16 by default, so a mixed
    // load (deliveries, flag changes, the indexer's batches) kept parsing them again.
    conn.set_prepared_statement_cache_capacity(128);
    // Plans must not depend on bound values: otherwise (STAT4 build) every cached
    // `WHERE k = ?1 ORDER BY ...` statement is parsed again whenever a new key is bound.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")
}

/// Gives the WAL `bytes` of zeros (see [`EmbeddedOptions::wal_preallocate`]), if it can be
/// done safely: only when a TRUNCATE checkpoint emptied it (no other connection was reading an
/// old snapshot), and under SQLite's write lock, so no other process can be appending frames
/// while the zeros go in. Readers trust the WAL index, which says the log is empty; the next
/// writer starts a new log at offset 0, over the zeros. Otherwise nothing is done.
///
/// [`EmbeddedOptions::wal_preallocate`]: crate::EmbeddedOptions::wal_preallocate
fn preallocate_wal(conn: &Connection, wal: &Path, bytes: u64) -> Result<()> {
    use std::io::Write;
    if bytes == 0 {
        return Ok(());
    }
    // Do not wait for other processes at start-up; busy just means no preallocation.
    conn.busy_timeout(Duration::from_millis(100))?;
    let emptied = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok_and(|busy| busy == 0);
    let filled = (|| -> Result<()> {
        if !emptied || conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            return Ok(());
        }
        let fill = (|| -> std::io::Result<()> {
            if std::fs::metadata(wal).map_or(true, |m| m.len() > 0) {
                return Ok(()); // written to since the checkpoint, or gone
            }
            let mut f = std::fs::OpenOptions::new().write(true).open(wal)?;
            let zeros = vec![0u8; 1 << 20];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            // Now, not at the first commit: otherwise that fdatasync would write them all.
            f.sync_data()
        })();
        conn.execute_batch("ROLLBACK")?;
        fill.map_err(|source| StoreError::Io {
            path: wal.display().to_string(),
            source,
        })
    })();
    conn.busy_timeout(Duration::from_secs(30))?;
    filled
}

impl Embedded {
    #[cfg(test)]
    pub(crate) fn open(data_dir: &Path) -> Result<Embedded> {
        Self::open_with(data_dir, &crate::EmbeddedOptions::default())
    }

    pub(crate) fn open_with(data_dir: &Path, options: &crate::EmbeddedOptions) -> Result<Embedded> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        // WAL + FULL: a commit returns only after the WAL is fsync'd.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA journal_size_limit = 134217728;",
        )?;
        schema::migrate(&mut conn)?;
        preallocate_wal(
            &conn,
            &data_dir.join(format!("{DB_FILE}-wal")),
            options.wal_preallocate,
        )?;
        let log_dir = data_dir.join(BLOB_DIR);
        let log = Arc::new(BlobLog::open(&log_dir).map_err(|source| StoreError::Io {
            path: log_dir.display().to_string(),
            source,
        })?);
        recover_log(&conn, &log)?;
        log.keep_zeros_ahead(options.log_zeros_ahead)
            .map_err(|source| StoreError::Io {
                path: log_dir.display().to_string(),
                source,
            })?;
        let wake = spawn_maintenance(path.clone(), log.clone())?;
        // Our own wal_hook replaces SQLite's autocheckpoint on this connection.
        let writer = Writer::start(conn, wake)?;
        Ok(Embedded {
            path,
            writer,
            readers: Mutex::new(Vec::new()),
            notifier: mailboxes::Notifier::default(),
            log,
            activity: AtomicU64::new(0),
            summary_cursor: Mutex::new(None),
        })
    }

    /// Stores `items` durably: hashes each one's body (`data`), writes the large ones to the
    /// blob log, and runs the write job that `job` makes of the bodies' keys and the items,
    /// while the logged records are made durable; returns once both are done.
    ///
    /// With large bodies all of it but the wait runs on one blocking thread, which queues the
    /// job as soon as the records are written and syncs them while the batch commits (every
    /// hand-off between threads costs tens of microseconds, a fair part of one delivery). The
    /// job holds the records until its batch has committed, so they are never reclaimed
    /// before their rows are visible.
    async fn store_bodies<I, T, J, F>(
        &self,
        items: Vec<I>,
        data: fn(&I) -> &Vec<u8>,
        job: J,
    ) -> Result<T>
    where
        I: Send + 'static,
        T: Send + 'static,
        J: FnOnce(Vec<BlobKey>, Vec<I>) -> F + Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if items.iter().all(|i| data(i).len() < LOG_MIN) {
            // Nothing to log: hash on the caller's thread, no hand-off.
            let keys = items
                .iter()
                .map(|i| prepare_body(&self.log, data(i)).map(|b| b.key))
                .collect::<Result<_>>()?;
            return self.writer.write(job(keys, items)).await;
        }
        let log = self.log.clone();
        let writer = self.writer.clone();
        let (queued, synced, records) = tokio::task::spawn_blocking(move || -> Result<_> {
            let bodies = items
                .iter()
                .map(|i| prepare_body(&log, data(i)))
                .collect::<Result<Vec<_>>>()?;
            let marks = durable_marks(&bodies);
            let records: Vec<Location> = bodies.iter().filter_map(|b| b.key.at).collect();
            let work = job(bodies.iter().map(|b| b.key.clone()).collect(), items);
            let bodies = Arc::new(bodies);
            let queued = writer.enqueue_holding(bodies.clone(), move |c: &Connection| {
                put_durable_marks(c, &marks)?;
                work(c)
            });
            let synced = bodies
                .iter()
                .filter_map(|b| b.logged.as_ref())
                .try_for_each(blob_log::Pending::sync);
            Ok((queued, synced, records))
        })
        .await
        .map_err(|_| StoreError::Unavailable("blob log task failed"))??;
        let committed = writer::answer(queued).await;
        if let Err(e) = synced {
            tracing::error!("blob log fdatasync failed: {e}");
            if committed.is_ok() {
                // The caller hears of a failure, so the rows must go: messages that are not
                // durable must not stay, and a client would send them again.
                let purge = self
                    .writer
                    .write(move |c| purge_blobs_at(c, &records))
                    .await;
                if let Err(p) = purge {
                    // Recovery checks these records at the next start (they are above the
                    // watermark, which a failed sync never raises).
                    tracing::error!("removing the messages of a failed blob log write: {p}");
                }
            }
            return Err(log_error(e));
        }
        committed
    }

    /// Stores a delivery (and with it the write job `also`, in the same transaction): its
    /// bodies as [`Self::store_bodies`] does, then the INBOX copies and the queue entry, unless
    /// `also` says not to. Returns `also`'s result and the receipt (none without a delivery);
    /// wakes the sessions watching the INBOXes.
    async fn store_delivery<T, A>(
        &self,
        d: Option<Delivery>,
        also: A,
    ) -> Result<(T, Option<DeliveryReceipt>)>
    where
        T: Send + 'static,
        A: FnOnce(&Connection) -> Result<(T, bool)> + Send + 'static,
    {
        let (d, parts) = match d {
            Some(d) => {
                let (d, parts) = split_delivery(d);
                (Some(d), parts)
            }
            None => (None, Vec::new()),
        };
        let log = self.log.clone();
        let (result, receipt) = self
            .store_bodies(
                parts,
                |p| p,
                move |keys, parts| {
                    let prepared = d.map(|d| PreparedDelivery::new(d, keys, parts));
                    move |c: &Connection| {
                        let (result, deliver) = also(c)?;
                        let receipt = match (&prepared, deliver) {
                            (Some(p), true) => Some(insert_delivery(c, &log, p)?),
                            _ => None,
                        };
                        Ok((result, receipt))
                    }
                },
            )
            .await?;
        let receipt = receipt.map(|(receipt, inboxes)| {
            self.notifier.bump(&inboxes);
            receipt
        });
        Ok((result, receipt))
    }

    fn reader(&self) -> Result<Connection> {
        if let Some(c) = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        Ok(conn)
    }

    /// Runs a read on a pooled connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.reader()?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let r = f(&conn);
            (conn, r)
        })
        .await
        .map_err(|_| StoreError::Unavailable("read task failed"))?;
        self.return_reader(conn);
        result
    }

    /// Runs a lookup of a few rows by an indexed key on the caller's thread. Such a read takes
    /// microseconds on cached pages, less than the two thread hand-offs of [`Self::read`] (which
    /// were most of the cost of a RCPT command). Anything that scans belongs in [`Self::read`].
    fn lookup<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.reader()?;
        let result = f(&conn);
        self.return_reader(conn);
        result
    }

    fn return_reader(&self, conn: Connection) {
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
    }
}

/// The maintenance thread: background PASSIVE checkpoints (never blocking readers or the
/// writer), when woken by the writer and at least once a second; and every
/// [`RECLAIM_EVERY`] the space of blob-log records that lost their rows (every segment once
/// at start-up, for records a crash left without rows). Returns the wake-up handle.
fn spawn_maintenance(path: PathBuf, log: Arc<BlobLog>) -> Result<mpsc::SyncSender<()>> {
    let conn = Connection::open(&path)?;
    configure(&conn)?;
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("store-maintenance".into())
        .spawn(move || {
            let mut last_reclaim: Option<std::time::Instant> = None;
            while let Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) =
                woken.recv_timeout(Duration::from_secs(1))
            {
                if let Err(e) = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                    tracing::debug!("WAL checkpoint skipped: {e}");
                }
                if last_reclaim.is_none_or(|t| t.elapsed() >= RECLAIM_EVERY) {
                    if let Err(e) = reclaim_log(&conn, &log, last_reclaim.is_none()) {
                        tracing::warn!("reclaiming blob log space: {e}");
                    }
                    last_reclaim = Some(std::time::Instant::now());
                }
            }
        })
        .map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
    Ok(wake)
}

/// How often the maintenance thread reclaims blob-log space.
const RECLAIM_EVERY: Duration = Duration::from_secs(10);

/// Reclaims the space of blob-log records without rows: in the segments `log_garbage` lists,
/// or in all of them.
fn reclaim_log(conn: &Connection, log: &BlobLog, all: bool) -> Result<()> {
    // Taken off the list first: a record deleted while this runs lists its segment again.
    let listed: Vec<u32> = conn
        .prepare("DELETE FROM log_garbage RETURNING segment")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !all && listed.is_empty() {
        return Ok(());
    }
    let mut stmt =
        conn.prepare_cached("SELECT offset, size FROM blobs WHERE segment = ?1 ORDER BY offset")?;
    let live = |segment: u32| -> std::io::Result<Vec<(u64, u64)>> {
        stmt.query_map([segment], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .and_then(|rows| rows.collect())
        .map_err(std::io::Error::other)
    };
    let done = log
        .reclaim((!all).then_some(listed.as_slice()), live)
        .map_err(log_error)?;
    drop(stmt);
    if done.punched > 0 || done.deleted > 0 {
        tracing::debug!(
            "blob log: freed {} bytes, deleted {} segments",
            done.punched,
            done.deleted
        );
    }
    // Segments in use elsewhere, or not finished: on the list for the next round.
    let mut relist =
        conn.prepare_cached("INSERT OR IGNORE INTO log_garbage (segment) VALUES (?1)")?;
    for segment in done.revisit {
        relist.execute([segment])?;
    }
    Ok(())
}

fn domain_id(conn: &Connection, domain: &str) -> Result<i64> {
    conn.query_row("SELECT id FROM domains WHERE name = ?1", [domain], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("domain {domain}")))
}

fn account_id(conn: &Connection, address: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM accounts WHERE address = ?1",
        [address],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("account {address}")))
}

/// Next UIDVALIDITY: the current time, but strictly above any value handed out before, so a
/// mailbox deleted and re-created within one second still gets a new one.
fn next_uid_validity(conn: &Connection) -> Result<u32> {
    let last: i64 = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'uid_validity'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let v = (now() & 0xffff_ffff).max(last + 1);
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('uid_validity', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [v],
    )?;
    Ok(v as u32)
}

fn insert_mailbox(
    conn: &Connection,
    account: i64,
    name: &str,
    special_use: Option<&str>,
) -> Result<i64> {
    let uv = next_uid_validity(conn)?;
    conn.execute(
        "INSERT INTO mailboxes (account_id, name, special_use, uid_validity) VALUES (?1, ?2, ?3, ?4)",
        params![account, name, special_use, uv],
    )
    .map_err(|e| unique_violation(e, || format!("mailbox {name}")))?;
    Ok(conn.last_insert_rowid())
}

fn unique_violation(e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::AlreadyExists(what())
        }
        _ => StoreError::Database(e),
    }
}

/// Bodies at least this large go to the blob log instead of the database (see blob_log.rs).
const LOG_MIN: usize = 32 * 1024;

/// What a write job needs to store a body besides its bytes. Computed on the caller's
/// thread: the writer thread is the serial bottleneck.
#[derive(Debug, Clone)]
struct BlobKey {
    hash: Vec<u8>,
    canonical_size: u64,
    /// Its blob-log record, for a large body.
    at: Option<Location>,
}

/// A message body ready to store: its key and, for a large body, its blob-log record.
struct Body {
    key: BlobKey,
    /// Held until the row pointing at the record has committed (or failed to).
    logged: Option<blob_log::Pending>,
}

/// The current watermarks of the segments `bodies` were logged in.
fn durable_marks(bodies: &[Body]) -> Vec<(u32, u64)> {
    bodies
        .iter()
        .filter_map(|b| b.logged.as_ref().map(blob_log::Pending::durable_mark))
        .collect()
}

fn log_error(source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: BLOB_DIR.into(),
        source,
    }
}

/// Hashes and measures `data` and, for a large body, writes it to the blob log (blocking;
/// not yet durable).
fn prepare_body(log: &BlobLog, data: &[u8]) -> Result<Body> {
    let hash = sha256(data);
    let logged = if data.len() >= LOG_MIN {
        Some(log.write(&hash, data).map_err(log_error)?)
    } else {
        None
    };
    let key = BlobKey {
        hash,
        canonical_size: canonical_size(data),
        at: logged.as_ref().map(|p| p.location),
    };
    Ok(Body { key, logged })
}

/// Stores the blob-log watermarks of `marks` (see blob_log.rs) with the rows of a write job.
fn put_durable_marks(conn: &Connection, marks: &[(u32, u64)]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO log_durable (segment, offset) VALUES (?1, ?2)
         ON CONFLICT (segment) DO UPDATE SET offset = max(offset, excluded.offset)",
    )?;
    for (segment, offset) in marks {
        stmt.execute(params![segment, *offset as i64])?;
    }
    Ok(())
}

/// After a crash: verifies the blob-log records above each segment's watermark and removes
/// the messages and queue entries whose record did not survive (their senders never got
/// "250": that waits for the record's fdatasync). Returns how many blobs were removed.
fn recover_log(conn: &Connection, log: &BlobLog) -> Result<usize> {
    let suspects: Vec<(i64, u32, i64, i64, Vec<u8>)> = conn
        .prepare(
            "SELECT b.id, b.segment, b.offset, b.size, b.hash FROM blobs b
             WHERE b.segment IS NOT NULL AND b.offset >= coalesce(
               (SELECT d.offset FROM log_durable d WHERE d.segment = b.segment), 0)",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut lost = Vec::new();
    for (id, segment, offset, size, hash) in suspects {
        let at = Location {
            segment,
            offset: offset as u64,
        };
        if !log.verify(at, size as u64, &hash).map_err(log_error)? {
            tracing::warn!(
                "blob log record {segment}:{offset} did not survive; removing its messages"
            );
            lost.push(id);
        }
    }
    if lost.is_empty() {
        return Ok(0);
    }
    let tx = conn.unchecked_transaction()?;
    purge_blobs(&tx, &lost)?;
    tx.commit()?;
    Ok(lost.len())
}

/// Inserts (or finds) a blob by its hash. A body already stored under that hash is shared;
/// if it is in the blob log above its segment's watermark (its own fdatasync may still be
/// running, in another job or another process), the segment is synced here, so sharing never
/// acknowledges bytes that are not durable. The caller's own record, then unused, is listed
/// for reclaiming.
fn put_blob(conn: &Connection, log: &BlobLog, key: &BlobKey, data: &[u8]) -> Result<i64> {
    let (hash, at) = (&key.hash, key.at);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO blobs (id, hash, size, data, segment, offset)
             VALUES ((SELECT max(coalesce((SELECT max(id) FROM blobs), 0),
                                 coalesce((SELECT value FROM meta WHERE key = 'last_blob'), 0)) + 1),
                     ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (hash) DO NOTHING",
        )?
        .execute(params![
            hash,
            data.len() as i64,
            if at.is_some() { &[][..] } else { data },
            at.map(|l| l.segment),
            at.map(|l| l.offset as i64),
        ])?;
    if inserted == 1 {
        return Ok(conn.last_insert_rowid());
    }
    let (id, segment, end, durable): (i64, Option<u32>, Option<i64>, i64) = conn
        .prepare_cached(
            "SELECT b.id, b.segment, b.offset + ?2 + b.size,
                    coalesce((SELECT d.offset FROM log_durable d WHERE d.segment = b.segment), 0)
             FROM blobs b WHERE b.hash = ?1",
        )?
        .query_row(params![hash, blob_log::HEADER as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    if let Some(own) = at {
        conn.prepare_cached("INSERT OR IGNORE INTO log_garbage (segment) VALUES (?1)")?
            .execute([own.segment])?;
    }
    if let (Some(segment), Some(end)) = (segment, end)
        && end > durable
    {
        log.sync_segment(segment).map_err(log_error)?;
    }
    Ok(id)
}

/// Removes the messages and queue entries whose body is one of `ids`, and the blobs: for
/// bodies that are not durable (a failed fdatasync, or lost in a crash).
fn purge_blobs(conn: &Connection, ids: &[i64]) -> Result<()> {
    for id in ids {
        let messages: Vec<(i64, Uid)> = conn
            .prepare_cached("SELECT mailbox_id, uid FROM messages WHERE blob_id = ?1")?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (mailbox, uid) in messages {
            mailboxes::remove_messages(conn, MailboxId(mailbox), &[uid])?;
        }
        conn.execute("DELETE FROM queue WHERE blob_id = ?1", [id])?;
    }
    collect_blobs(conn, ids)
}

/// [`purge_blobs`] for the blobs whose bodies are the blob-log records at `records`.
fn purge_blobs_at(conn: &Connection, records: &[Location]) -> Result<()> {
    let mut ids = Vec::new();
    let mut find =
        conn.prepare_cached("SELECT id FROM blobs WHERE segment = ?1 AND offset = ?2")?;
    for at in records {
        if let Some(id) = find
            .query_row(params![at.segment, at.offset as i64], |r| r.get(0))
            .optional()?
        {
            ids.push(id);
        }
    }
    purge_blobs(conn, &ids)
}

/// A delivery whose bodies are hashed (and logged if large), ready for a write job.
struct PreparedDelivery {
    d: Delivery,
    local_key: Option<BlobKey>,
    remote_key: Option<BlobKey>,
}

/// Takes a delivery's two bodies out, to be hashed and logged: [local, remote], each empty
/// when nobody gets it (a body without recipients is not stored).
fn split_delivery(mut d: Delivery) -> (Delivery, Vec<Vec<u8>>) {
    let local = std::mem::take(&mut d.local_data);
    let remote = std::mem::take(&mut d.remote_data);
    let parts = vec![
        if d.local.is_empty() {
            Vec::new()
        } else {
            local
        },
        if d.remote.is_empty() {
            Vec::new()
        } else {
            remote
        },
    ];
    (d, parts)
}

impl PreparedDelivery {
    /// Puts back the bodies [`split_delivery`] took, with their keys.
    fn new(mut d: Delivery, keys: Vec<BlobKey>, mut parts: Vec<Vec<u8>>) -> PreparedDelivery {
        let mut keys = keys.into_iter();
        let (local_key, remote_key) = (keys.next(), keys.next());
        d.remote_data = parts.pop().unwrap_or_default();
        d.local_data = parts.pop().unwrap_or_default();
        PreparedDelivery {
            local_key: local_key.filter(|_| !d.local.is_empty()),
            remote_key: remote_key.filter(|_| !d.remote.is_empty()),
            d,
        }
    }
}

/// Stores a delivery inside a write job: local INBOX copies and/or one queue entry. Returns
/// the receipt and the INBOXes to notify.
fn insert_delivery(
    c: &Connection,
    log: &BlobLog,
    p: &PreparedDelivery,
) -> Result<(DeliveryReceipt, Vec<MailboxId>)> {
    let d = &p.d;
    let mut local_uids = Vec::with_capacity(d.local.len());
    let mut inboxes = Vec::with_capacity(d.local.len());
    if let Some(key) = &p.local_key {
        let blob = put_blob(c, log, key, &d.local_data)?;
        for account in &d.local {
            let inbox = inbox_of(c, account.0)?;
            inboxes.push(MailboxId(inbox));
            let row = MessageRow {
                blob,
                size: d.local_data.len(),
                canonical_size: Some(key.canonical_size),
                internal_date: d.received,
                flags: &Flags::default(),
            };
            local_uids.push(insert_message(c, inbox, &row)?);
        }
    }
    let mut queue_id = None;
    if let Some(key) = &p.remote_key {
        let blob = put_blob(c, log, key, &d.remote_data)?;
        // Queue ids are never reused (SQLite would hand out a deleted max rowid again): an
        // update or an admin command naming a removed entry must not hit a newer one.
        let id: i64 = c
            .prepare_cached(
                "INSERT INTO meta (key, value)
                 VALUES ('queue_seq', coalesce((SELECT max(id) FROM queue), 0) + 1)
                 ON CONFLICT (key) DO UPDATE SET value = max(value, coalesce((SELECT max(id) FROM queue), 0)) + 1
                 RETURNING value",
            )?
            .query_row([], |r| r.get(0))?;
        c.prepare_cached(
            "INSERT INTO queue (id, sender, blob_id, size, created, next_attempt) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?
        .execute(params![id, d.sender, blob, d.remote_data.len() as i64, d.received])?;
        let mut stmt = c.prepare_cached(
            "INSERT OR IGNORE INTO queue_recipients (queue_id, address) VALUES (?1, ?2)",
        )?;
        for rcpt in &d.remote {
            stmt.execute(params![id, rcpt])?;
        }
        queue_id = Some(id);
    }
    Ok((
        DeliveryReceipt {
            local_uids,
            queue_id,
        },
        inboxes,
    ))
}

/// Runs `test` on each row of `sql` (uid, keys, headers, body); keeps non-zero results. The
/// bytes are borrowed from SQLite, never copied.
fn scan(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    test: &ScanTest,
) -> Result<Vec<(Uid, u64)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let bytes = |i: usize| -> rusqlite::Result<&[u8]> {
            r.get_ref(i)?.as_blob().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    r.get_ref_unwrap(i).data_type(),
                    Box::new(e),
                )
            })
        };
        let bits = test(ScanRow {
            keys: bytes(1)?,
            headers: bytes(2)?,
            body: bytes(3)?,
        });
        if bits != 0 {
            out.push((r.get(0)?, bits));
        }
    }
    Ok(out)
}

/// Deletes blobs among `candidates` that nothing references any more.
fn collect_blobs(conn: &Connection, candidates: &[i64]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM blobs WHERE id = ?1
           AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM queue WHERE blob_id = ?1)",
    )?;
    for id in candidates {
        stmt.execute([id])?;
    }
    Ok(())
}

/// What a new message row holds besides its place (mailbox, UID, MODSEQ).
struct MessageRow<'a> {
    blob: i64,
    size: usize,
    /// See [`crate::canonical_size`]; `None` if unknown (counted from the body when needed).
    canonical_size: Option<u64>,
    internal_date: i64,
    flags: &'a Flags,
}

/// Appends one message to a mailbox: next UID, next MODSEQ.
fn insert_message(conn: &Connection, mailbox: i64, m: &MessageRow<'_>) -> Result<Uid> {
    let (uid, modseq): (u32, i64) = conn
        .prepare_cached(
            "UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1
             WHERE id = ?1 RETURNING uid_next - 1, highest_modseq",
        )?
        .query_row([mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?;
    conn.prepare_cached(
        "INSERT INTO messages (mailbox_id, uid, blob_id, size, canonical_size, internal_date,
                               flags, keywords, modseq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        mailbox,
        uid,
        m.blob,
        m.size as i64,
        m.canonical_size.map(|n| n as i64),
        m.internal_date,
        m.flags.system,
        m.flags.keywords.join(" "),
        modseq
    ])?;
    Ok(uid)
}

fn inbox_of(conn: &Connection, account: i64) -> Result<i64> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT id FROM mailboxes WHERE account_id = ?1 AND name = 'INBOX'")?
        .query_row([account], |r| r.get(0))
        .optional()?;
    match found {
        Some(id) => Ok(id),
        // INBOX cannot be deleted, but be robust to a hand-edited database.
        None => insert_mailbox(conn, account, "INBOX", None),
    }
}

/// The bytes of a stored message, from the row or from the blob log.
fn blob_data(c: &Connection, log: &BlobLog, blob: i64) -> Result<Vec<u8>> {
    type Row = (Vec<u8>, i64, Vec<u8>, Option<u32>, Option<i64>);
    let (data, size, hash, segment, offset): Row = c
        .prepare_cached("SELECT data, size, hash, segment, offset FROM blobs WHERE id = ?1")?
        .query_row([blob], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("blob {blob}")))?;
    match (segment, offset) {
        (Some(segment), Some(offset)) => log
            .read(
                Location {
                    segment,
                    offset: offset as u64,
                },
                size as u64,
                &hash,
            )
            .map_err(|source| StoreError::Io {
                path: format!("{BLOB_DIR}/{segment:08}.seg"),
                source,
            }),
        _ => Ok(data),
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

#[async_trait::async_trait]
impl Backend for Embedded {
    async fn add_domain(&self, domain: &str) -> Result<()> {
        let domain = domain.to_string();
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO domains (name, created) VALUES (?1, ?2)",
                    params![domain, now()],
                )
                .map_err(|e| unique_violation(e, || format!("domain {domain}")))?;
                Ok(())
            })
            .await
    }

    async fn remove_domain(&self, domain: &str) -> Result<()> {
        let domain = domain.to_string();
        self.writer
            .write(move |c| {
                let id = domain_id(c, &domain)?;
                let accounts: i64 =
                    c.query_row("SELECT count(*) FROM accounts WHERE domain_id = ?1", [id], |r| {
                        r.get(0)
                    })?;
                let aliases: i64 =
                    c.query_row("SELECT count(*) FROM aliases WHERE domain_id = ?1", [id], |r| {
                        r.get(0)
                    })?;
                if accounts > 0 || aliases > 0 {
                    return Err(StoreError::Conflict(format!(
                        "domain {domain} still has {accounts} account(s) and {aliases} alias(es); remove them first"
                    )));
                }
                c.execute("DELETE FROM domains WHERE id = ?1", [id])?;
                Ok(())
            })
            .await
    }

    async fn list_domains(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT name FROM domains ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }

    async fn is_local_domain(&self, domain: &str) -> Result<bool> {
        self.lookup(|c| {
            Ok(c.prepare_cached("SELECT 1 FROM domains WHERE name = ?1")?
                .exists([domain])?)
        })
    }

    async fn add_account(&self, address: &str, password_hash: &str) -> Result<AccountId> {
        let (address, hash) = (address.to_string(), password_hash.to_string());
        self.writer
            .write(move |c| {
                let domain = domain_id(c, crate::domain_of(&address))?;
                c.execute(
                    "INSERT INTO accounts (address, domain_id, password_hash, created) VALUES (?1, ?2, ?3, ?4)",
                    params![address, domain, hash, now()],
                )
                .map_err(|e| unique_violation(e, || format!("account {address}")))?;
                let id = c.last_insert_rowid();
                for (name, special) in DEFAULT_MAILBOXES {
                    insert_mailbox(c, id, name, *special)?;
                    mailboxes::set_subscribed(c, AccountId(id), name, true)?;
                }
                Ok(AccountId(id))
            })
            .await
    }

    async fn remove_account(&self, address: &str) -> Result<()> {
        let address = address.to_string();
        self.writer
            .write(move |c| {
                let id = account_id(c, &address)?;
                let blobs: Vec<i64> = {
                    let mut stmt = c.prepare(
                        "SELECT DISTINCT blob_id FROM messages WHERE mailbox_id IN
                           (SELECT id FROM mailboxes WHERE account_id = ?1)",
                    )?;
                    stmt.query_map([id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
                };
                c.execute(
                    "DELETE FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)",
                    [id],
                )?;
                c.execute(
                    "DELETE FROM expunged WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)",
                    [id],
                )?;
                c.execute("DELETE FROM mailboxes WHERE account_id = ?1", [id])?;
                c.execute("DELETE FROM subscriptions WHERE account_id = ?1", [id])?;
                c.execute("DELETE FROM aliases WHERE target = ?1", [&address])?;
                c.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
                collect_blobs(c, &blobs)
            })
            .await
    }

    async fn set_password(&self, address: &str, password_hash: &str) -> Result<()> {
        let (address, hash) = (address.to_string(), password_hash.to_string());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE accounts SET password_hash = ?2 WHERE address = ?1",
                    params![address, hash],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("account {address}")));
                }
                Ok(())
            })
            .await
    }

    async fn list_accounts(&self, domain: Option<&str>) -> Result<Vec<Account>> {
        let domain = domain.map(str::to_string);
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT a.id, a.address, a.created FROM accounts a JOIN domains d ON d.id = a.domain_id
                 WHERE ?1 IS NULL OR d.name = ?1 ORDER BY a.address",
            )?;
            let rows = stmt.query_map([domain], |r| {
                Ok(Account { id: AccountId(r.get(0)?), address: r.get(1)?, created: r.get(2)? })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn credentials(&self, address: &str) -> Result<Option<Credentials>> {
        self.lookup(|c| {
            Ok(c.prepare_cached(
                "SELECT id, address, password_hash FROM accounts WHERE address = ?1",
            )?
            .query_row([address], |r| {
                Ok(Credentials {
                    id: AccountId(r.get(0)?),
                    address: r.get(1)?,
                    password_hash: r.get(2)?,
                })
            })
            .optional()?)
        })
    }

    async fn add_alias(&self, source: &str, target: &str) -> Result<()> {
        let (source, target) = (source.to_string(), target.to_string());
        self.writer
            .write(move |c| {
                let domain = domain_id(c, crate::domain_of(&source))?;
                c.execute(
                    "INSERT INTO aliases (source, target, domain_id) VALUES (?1, ?2, ?3)",
                    params![source, target, domain],
                )
                .map_err(|e| unique_violation(e, || format!("alias {source} -> {target}")))?;
                Ok(())
            })
            .await
    }

    async fn remove_alias(&self, source: &str, target: Option<&str>) -> Result<()> {
        let (source, target) = (source.to_string(), target.map(str::to_string));
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "DELETE FROM aliases WHERE source = ?1 AND (?2 IS NULL OR target = ?2)",
                    params![source, target],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound(match target {
                        Some(t) => format!("alias {source} -> {t}"),
                        None => format!("alias {source}"),
                    }));
                }
                Ok(())
            })
            .await
    }

    async fn list_aliases(&self, domain: Option<&str>) -> Result<Vec<Alias>> {
        let domain = domain.map(str::to_string);
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT a.source, a.target FROM aliases a JOIN domains d ON d.id = a.domain_id
                 WHERE ?1 IS NULL OR d.name = ?1 ORDER BY a.source, a.target",
            )?;
            let rows = stmt.query_map([domain], |r| {
                Ok(Alias {
                    source: r.get(0)?,
                    target: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn lookup_address(&self, address: &str) -> Result<AddressLookup> {
        self.lookup(|c| {
            let account = c
                .prepare_cached("SELECT id FROM accounts WHERE address = ?1")?
                .query_row([address], |r| r.get(0))
                .optional()?
                .map(AccountId);
            let mut stmt =
                c.prepare_cached("SELECT target FROM aliases WHERE source = ?1 ORDER BY target")?;
            let alias_targets = stmt
                .query_map([address], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(AddressLookup {
                account,
                alias_targets,
            })
        })
    }

    async fn list_mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.read(move |c| mailboxes::list(c, account)).await
    }

    async fn create_mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox> {
        self.create_mailbox_special(account, name, None).await
    }

    async fn create_mailbox_special(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<Mailbox> {
        let (name, special) = (name.to_string(), special_use.map(str::to_string));
        let id = self
            .writer
            .write(move |c| mailboxes::create(c, account, &name, special.as_deref()))
            .await?;
        self.read(move |c| mailboxes::by_id(c, id)).await
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_string();
        let id = self
            .writer
            .write(move |c| mailboxes::delete(c, account, &name))
            .await?;
        self.notifier.bump(&[id]);
        Ok(())
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let (from, to) = (from.to_string(), to.to_string());
        let ids = self
            .writer
            .write(move |c| mailboxes::rename(c, account, &from, &to))
            .await?;
        self.notifier.bump(&ids);
        Ok(())
    }

    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.read(move |c| mailboxes::subscriptions(c, account))
            .await
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, on: bool) -> Result<()> {
        let name = name.to_string();
        self.writer
            .write(move |c| mailboxes::set_subscribed(c, account, &name, on))
            .await
    }

    async fn mailbox_by_name(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
        self.lookup(|c| mailboxes::by_name(c, account, name))
    }

    async fn account_usage(&self, account: AccountId) -> Result<u64> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id IN
                   (SELECT id FROM mailboxes WHERE account_id = ?1)",
            )?
            .query_row([account.0], |r| r.get::<_, i64>(0))? as u64)
        })
        .await
    }

    async fn mailbox_status(&self, mailbox: MailboxId) -> Result<MailboxStatus> {
        self.read(move |c| mailboxes::status(c, mailbox)).await
    }

    async fn snapshot(&self, mailbox: MailboxId) -> Result<MailboxSnapshot> {
        self.read(move |c| mailboxes::snapshot(c, mailbox)).await
    }

    async fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<MailboxChanges> {
        self.read(move |c| mailboxes::changes_since(c, mailbox, modseq))
            .await
    }

    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> Result<FlagUpdate> {
        let r = self
            .writer
            .write(move |c| mailboxes::store_flags(c, mailbox, &uids, op, &flags, unchanged_since))
            .await?;
        if !r.updated.is_empty() {
            self.notifier.bump(&[mailbox]);
        }
        Ok(r)
    }

    async fn expunge(&self, mailbox: MailboxId, uids: Option<Vec<Uid>>) -> Result<Vec<Uid>> {
        let r = self
            .writer
            .write(move |c| mailboxes::expunge(c, mailbox, uids.as_deref()))
            .await?;
        if !r.is_empty() {
            self.notifier.bump(&[mailbox]);
        }
        Ok(r)
    }

    async fn expunge_uids(&self, mailbox: MailboxId, uids: Vec<Uid>) -> Result<Vec<Uid>> {
        let r = self
            .writer
            .write(move |c| mailboxes::expunge_uids(c, mailbox, uids))
            .await?;
        if !r.is_empty() {
            self.notifier.bump(&[mailbox]);
        }
        Ok(r)
    }

    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
        remove: bool,
    ) -> Result<CopyResult> {
        let r = self
            .writer
            .write(move |c| mailboxes::copy(c, from, &uids, to, remove))
            .await?;
        if !r.pairs.is_empty() {
            self.notifier.bump(&[from, to]);
        }
        Ok(r)
    }

    fn watch(&self, mailbox: MailboxId) -> tokio::sync::watch::Receiver<u64> {
        self.notifier.watch(mailbox)
    }

    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        self.read(move |c| mailboxes::messages(c, mailbox)).await
    }

    async fn message_listing(&self, mailbox: MailboxId) -> Result<MessageListing> {
        let log = self.log.clone();
        self.read(move |c| mailboxes::listing(c, &log, mailbox))
            .await
    }

    async fn get_messages(&self, mailbox: MailboxId, uids: Vec<Uid>) -> Result<Vec<MessageMeta>> {
        if uids.len() <= INLINE_POINT_READS {
            self.lookup(|c| mailboxes::messages_by_uid(c, mailbox, &uids))
        } else {
            self.read(move |c| mailboxes::messages_by_uid(c, mailbox, &uids))
                .await
        }
    }

    async fn read_blob(&self, blob: BlobId) -> Result<Vec<u8>> {
        // A small blob is a few cached page reads, cheaper on the caller's thread than the two
        // hand-offs of `read` (POP3 RETR, IMAP BODY[] of ordinary mail); `size` comes before
        // `data` in the row, so asking for it reads no overflow pages.
        let small = self.lookup(|c| {
            let size: Option<i64> = c
                .prepare_cached("SELECT size FROM blobs WHERE id = ?1")?
                .query_row([blob.0], |r| r.get(0))
                .optional()?;
            match size {
                Some(n) if n <= INLINE_BLOB as i64 => blob_data(c, &self.log, blob.0).map(Some),
                _ => Ok(None),
            }
        })?;
        match small {
            Some(data) => Ok(data),
            None => {
                let log = self.log.clone();
                self.read(move |c| blob_data(c, &log, blob.0)).await
            }
        }
    }

    async fn append(&self, mailbox: MailboxId, messages: Vec<NewMessage>) -> Result<Vec<Uid>> {
        self.activity.fetch_add(1, Ordering::Relaxed);
        let log = self.log.clone();
        let job = move |keys: Vec<BlobKey>, messages: Vec<NewMessage>| {
            move |c: &Connection| {
                let exists = c
                    .prepare_cached("SELECT 1 FROM mailboxes WHERE id = ?1")?
                    .exists([mailbox.0])?;
                if !exists {
                    return Err(StoreError::NotFound(format!("mailbox {}", mailbox.0)));
                }
                let mut uids = Vec::with_capacity(keys.len());
                for (key, m) in keys.iter().zip(&messages) {
                    let blob = put_blob(c, &log, key, &m.data)?;
                    let row = MessageRow {
                        blob,
                        size: m.data.len(),
                        canonical_size: Some(key.canonical_size),
                        internal_date: m.internal_date,
                        flags: &m.flags,
                    };
                    uids.push(insert_message(c, mailbox.0, &row)?);
                }
                Ok(uids)
            }
        };
        let uids = self.store_bodies(messages, |m| &m.data, job).await?;
        self.notifier.bump(&[mailbox]);
        Ok(uids)
    }

    async fn summarize_pending(
        &self,
        mailbox: Option<MailboxId>,
        limit: usize,
        summarize: for<'a> fn(&'a [u8]) -> SummaryData,
    ) -> Result<usize> {
        let log = self.log.clone();
        // The background pass goes newest first (recent mail is what people search for) and
        // continues below where its last batch ended, so it never walks what it has done.
        let below = match mailbox {
            None => *self
                .summary_cursor
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            Some(_) => None,
        };
        let (summaries, mark, next_mark, cursor) = self
            .read(move |c| {
                let limit = limit as i64;
                // Only blobs at or above the watermark can lack a summary (schema version
                // 11): a few index probes once the background task has caught up, however
                // large the mailbox (SEARCH asks this every time).
                let mark: i64 = c
                    .prepare_cached("SELECT value FROM meta WHERE key = 'summarized_below'")?
                    .query_row([], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0);
                let pending_below = |below: Option<i64>| -> rusqlite::Result<Vec<i64>> {
                    c.prepare_cached(
                        "SELECT b.id FROM blobs b WHERE b.id >= ?1 AND b.id < ?2
                           AND NOT EXISTS (SELECT 1 FROM summaries s WHERE s.blob_id = b.id)
                         ORDER BY b.id DESC LIMIT ?3",
                    )?
                    .query_map(params![mark, below.unwrap_or(i64::MAX), limit], |r| r.get(0))?
                    .collect()
                };
                let ids = match mailbox {
                    // Every mailbox's messages at or above the mark are walked (the index has
                    // only the blob id): cheap while the background task keeps the mark close
                    // to the newest blob, about what the to-do list cost during a burst.
                    Some(m) => c
                        .prepare_cached(
                            "SELECT DISTINCT m.blob_id FROM messages m INDEXED BY messages_blob
                             WHERE m.blob_id >= ?1 AND m.mailbox_id = ?2
                               AND NOT EXISTS (SELECT 1 FROM summaries s WHERE s.blob_id = m.blob_id)
                             LIMIT ?3",
                        )?
                        .query_map(params![mark, m.0, limit], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()?,
                    None => match pending_below(below)? {
                        // The pass reached the bottom: start again from the newest blob.
                        ids if ids.is_empty() && below.is_some() => pending_below(None)?,
                        ids => ids,
                    },
                };
                // Where the next background batch starts: below this one, unless this one
                // reached the bottom of what is pending.
                let cursor = match ids.last() {
                    Some(&lowest) if ids.len() as i64 == limit => Some(lowest),
                    _ => None,
                };
                let mut out = Vec::with_capacity(ids.len());
                for id in &ids {
                    match blob_data(c, &log, *id) {
                        Ok(data) => out.push((*id, summarize(&data))),
                        // Deleted meanwhile: nothing to summarise.
                        Err(StoreError::NotFound(_)) => {}
                        // One unreadable body must not stall summarising for everyone: it
                        // gets an empty summary (found by no text search) and a warning.
                        Err(e) => {
                            tracing::warn!("summarising blob {id}: {e}");
                            out.push((*id, summarize(b"")));
                        }
                    }
                }
                // The new watermark: the oldest blob still without a summary once this batch
                // is stored, or past the newest blob. Found here, on a reader, rather than in
                // the writer: after a pass the walk up from the old mark may be long. It stays
                // true until it is stored, since blobs stored meanwhile get higher ids (schema
                // version 8) and summaries are only ever added.
                let batch: std::collections::HashSet<i64> = ids.iter().copied().collect();
                let mut stmt = c.prepare_cached(
                    "SELECT b.id FROM blobs b WHERE b.id >= ?1
                       AND NOT EXISTS (SELECT 1 FROM summaries s WHERE s.blob_id = b.id)
                     ORDER BY b.id",
                )?;
                let mut rows = stmt.query([mark])?;
                let mut next_mark = None;
                while let Some(r) = rows.next()? {
                    let id: i64 = r.get(0)?;
                    if !batch.contains(&id) {
                        next_mark = Some(id);
                        break;
                    }
                }
                let next_mark = match next_mark {
                    Some(id) => id,
                    None => c
                        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM blobs")?
                        .query_row([], |r| r.get(0))?,
                };
                Ok((out, mark, next_mark, cursor))
            })
            .await?;
        if mailbox.is_none() {
            *self
                .summary_cursor
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = cursor;
        }
        let n = summaries.len();
        if n == 0 && next_mark <= mark {
            return Ok(0);
        }
        self.writer
            .write(move |c| {
                // A blob deleted meanwhile gets no summary.
                let mut put = c.prepare_cached(
                    "INSERT OR REPLACE INTO summaries (blob_id, keys, headers)
                     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM blobs WHERE id = ?1)",
                )?;
                let mut put_fetch = c.prepare_cached(
                    "INSERT OR REPLACE INTO fetch_parts (blob_id, data)
                     SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM blobs WHERE id = ?1)",
                )?;
                let mut put_body = c.prepare_cached(
                    "INSERT OR REPLACE INTO body_text (blob_id, data)
                     SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM blobs WHERE id = ?1)",
                )?;
                for (blob, s) in &summaries {
                    put.execute(params![blob, s.keys, s.headers])?;
                    put_fetch.execute(params![blob, s.fetch])?;
                    put_body.execute(params![blob, s.body])?;
                }
                c.prepare_cached(
                    "UPDATE meta SET value = max(value, ?1) WHERE key = 'summarized_below'",
                )?
                .execute([next_mark])?;
                Ok(())
            })
            .await?;
        Ok(n)
    }

    async fn fetch_parts(&self, blobs: Vec<BlobId>) -> Result<Vec<Option<Vec<u8>>>> {
        let n = blobs.len();
        let get = move |c: &Connection| -> Result<Vec<Option<Vec<u8>>>> {
            let mut stmt = c.prepare_cached("SELECT data FROM fetch_parts WHERE blob_id = ?1")?;
            let mut out = Vec::with_capacity(blobs.len());
            for b in &blobs {
                out.push(stmt.query_row([b.0], |r| r.get(0)).optional()?);
            }
            Ok(out)
        };
        if n <= INLINE_POINT_READS {
            self.lookup(get)
        } else {
            self.read(get).await
        }
    }

    async fn summary_keys(&self, mailbox: MailboxId) -> Result<Vec<(Uid, Option<Vec<u8>>)>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT m.uid, s.keys FROM messages m LEFT JOIN summaries s ON s.blob_id = m.blob_id
                 WHERE m.mailbox_id = ?1 ORDER BY m.uid",
            )?;
            let rows = stmt.query_map([mailbox.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn scan_summaries(
        &self,
        mailbox: MailboxId,
        bodies: bool,
        test: ScanTest,
    ) -> Result<Vec<(Uid, u64)>> {
        if !bodies {
            return self
                .read(move |c| {
                    scan(
                        c,
                        "SELECT m.uid, s.keys, s.headers, x'' FROM messages m
                         JOIN summaries s ON s.blob_id = m.blob_id
                         WHERE m.mailbox_id = ?1 ORDER BY m.uid",
                        params![mailbox.0],
                        &test,
                    )
                })
                .await;
        }
        // Body text is most of a mailbox's bytes: one reader per core, each taking the UIDs of
        // one residue class.
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let conns = (0..parts)
            .map(|_| self.reader())
            .collect::<Result<Vec<_>>>()?;
        let (conns, result) = tokio::task::spawn_blocking(move || {
            let test = &test;
            let done: Vec<(Connection, Result<Vec<(Uid, u64)>>)> = std::thread::scope(|s| {
                let threads: Vec<_> = conns
                    .into_iter()
                    .enumerate()
                    .map(|(part, c)| {
                        s.spawn(move || {
                            let r = scan(
                                &c,
                                "SELECT m.uid, s.keys, s.headers, b.data FROM messages m
                                 JOIN summaries s ON s.blob_id = m.blob_id
                                 JOIN body_text b ON b.blob_id = m.blob_id
                                 WHERE m.mailbox_id = ?1 AND m.uid % ?2 = ?3 ORDER BY m.uid",
                                params![mailbox.0, parts as i64, part as i64],
                                test,
                            );
                            (c, r)
                        })
                    })
                    .collect();
                threads.into_iter().filter_map(|t| t.join().ok()).collect()
            });
            let complete = done.len() == parts;
            let mut hits = Vec::new();
            let mut conns = Vec::new();
            let mut err = None;
            for (c, r) in done {
                conns.push(c);
                match r {
                    Ok(h) => hits.extend(h),
                    Err(e) => err = Some(e),
                }
            }
            hits.sort_unstable_by_key(|(uid, _)| *uid);
            let result = match (err, complete) {
                (Some(e), _) => Err(e),
                (None, false) => Err(StoreError::Unavailable("scan thread failed")),
                (None, true) => Ok(hits),
            };
            (conns, result)
        })
        .await
        .map_err(|_| StoreError::Unavailable("scan task failed"))?;
        for c in conns {
            self.return_reader(c);
        }
        result
    }

    async fn deliver(&self, d: Delivery) -> Result<DeliveryReceipt> {
        self.activity.fetch_add(1, Ordering::Relaxed);
        let ((), receipt) = self.store_delivery(Some(d), |_| Ok(((), true))).await?;
        receipt.ok_or(StoreError::Unavailable("delivery not stored"))
    }

    async fn list_queue(&self) -> Result<Vec<QueueEntry>> {
        self.read(|c| queue::entries(c, None)).await
    }

    async fn queue_entry(&self, id: i64) -> Result<Option<QueueEntry>> {
        self.lookup(|c| Ok(queue::entries(c, Some(id))?.pop()))
    }

    async fn claim_queue(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>> {
        self.writer
            .write(move |c| queue::claim(c, now, lease_until, limit))
            .await
    }

    async fn release_queue_leases(&self, now: i64) -> Result<u64> {
        self.writer
            .write(move |c| {
                Ok(c.prepare_cached(
                    "UPDATE queue SET leased = 0, next_attempt = min(next_attempt, ?1) WHERE leased = 1",
                )?
                .execute([now])? as u64)
            })
            .await
    }

    async fn update_queue(&self, mut update: QueueUpdate) -> Result<QueueOutcome> {
        let notice = update.notice.take();
        let (outcome, _) = self
            .store_delivery(notice, move |c| {
                // The notice goes with the attempt that caused it, unless the entry is gone.
                let outcome = queue::update(c, &update)?;
                let gone = outcome == QueueOutcome::Gone;
                Ok((outcome, !gone))
            })
            .await?;
        Ok(outcome)
    }

    async fn retry_queue(&self, id: Option<i64>, now: i64) -> Result<u64> {
        self.writer
            .write(move |c| {
                let n = match id {
                    Some(id) => c
                        .prepare_cached("UPDATE queue SET next_attempt = ?2 WHERE id = ?1")?
                        .execute(params![id, now])?,
                    None => c
                        .prepare_cached(
                            "UPDATE queue SET next_attempt = ?1 WHERE leased = 0 AND next_attempt > ?1",
                        )?
                        .execute([now])?,
                };
                Ok(n as u64)
            })
            .await
    }

    async fn delete_queue(&self, id: i64) -> Result<bool> {
        self.writer.write(move |c| queue::remove(c, id)).await
    }

    async fn next_queue_due(&self) -> Result<Option<i64>> {
        self.lookup(|c| {
            Ok(c.prepare_cached("SELECT min(next_attempt) FROM queue")?
                .query_row([], |r| r.get(0))?)
        })
    }

    fn store_activity(&self) -> u64 {
        self.activity.load(Ordering::Relaxed)
    }

    async fn stats(&self) -> Result<Stats> {
        self.read(|c| {
            let count = |table: &str| -> rusqlite::Result<u64> {
                c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
            };
            Ok(Stats {
                domains: count("domains")?,
                accounts: count("accounts")?,
                aliases: count("aliases")?,
                messages: count("messages")?,
                queued: count("queue")?,
                // Only blobs at or above the watermark can lack a summary.
                unsummarized: c.query_row(
                    "SELECT count(*) FROM blobs b
                     WHERE b.id >= coalesce((SELECT value FROM meta WHERE key = 'summarized_below'), 0)
                       AND NOT EXISTS (SELECT 1 FROM summaries s WHERE s.blob_id = b.id)",
                    [],
                    |r| r.get::<_, i64>(0).map(|n| n as u64),
                )?,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests;
