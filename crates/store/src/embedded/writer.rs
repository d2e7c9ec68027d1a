//! Group commit: one writer thread owns the write connection and runs every mutation.
//!
//! Callers enqueue jobs; the thread takes whatever is queued (up to [`MAX_BATCH`]), runs each
//! job inside its own SAVEPOINT within one transaction, commits once (one WAL fsync with
//! `synchronous=FULL`), and only then answers every caller. While one batch is being fsync'd
//! the next one accumulates, so the number of fsyncs per second stays bounded while throughput
//! grows with concurrency. A failing job rolls back only its own savepoint.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// Upper bound on jobs per transaction: keeps one commit's latency bounded.
const MAX_BATCH: usize = 512;
/// WAL size (pages) at which the background checkpointer is woken.
const WAKE_CHECKPOINT_PAGES: i64 = 4096;
/// WAL size (pages) at which the writer finishes the checkpoint itself. A busy writer keeps
/// appending while a background PASSIVE checkpoint copies, so the WAL would never be fully
/// backfilled and never restart from its beginning; the writer catching up (usually only the
/// few frames the background has not copied yet) bounds the WAL at about this size.
const FORCE_CHECKPOINT_PAGES: i64 = 16384;

/// A unit of work for the writer thread.
pub(super) trait Job: Send {
    /// Runs the work; returns whether it succeeded (failure rolls back its savepoint).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: with its own result if the batch committed, else with `commit_error`.
    fn finish(self: Box<Self>, commit_error: Option<String>);
}

struct TypedJob<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    /// Kept until the job's batch has committed (or failed): see [`Writer::enqueue_holding`].
    _hold: Option<Box<dyn Send>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or(Err(StoreError::Unavailable("store job panicked")));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit_error: Option<String>) {
        let result = match (commit_error, self.result) {
            (None, Some(r)) => r,
            (Some(e), Some(Err(own))) => {
                tracing::debug!("job failed ({own}) in a batch that failed to commit: {e}");
                Err(own)
            }
            (Some(e), _) => Err(StoreError::CommitFailed(e)),
            (None, None) => Err(StoreError::Unavailable("job never ran")),
        };
        let _ = self.reply.send(result);
    }
}

/// Handle for submitting jobs to the writer thread.
#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn`; `checkpoint` wakes the background checkpointer.
    pub(super) fn start(
        mut conn: Connection,
        checkpoint: mpsc::SyncSender<()>,
    ) -> rusqlite::Result<Writer> {
        let wal_pages = Arc::new(AtomicI64::new(0));
        let hook_pages = wal_pages.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
            hook_pages.store(i64::from(pages), Ordering::Relaxed);
            Ok(())
        }))?;
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(conn, rx, &wal_pages, &checkpoint))
            .expect("spawning the store writer thread");
        Ok(Writer { tx })
    }

    /// Runs `work` in the next batch; resolves once the batch is durable.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        answer(self.enqueue(work, None)).await
    }

    /// Queues `work` for the next batch without waiting (callable from any thread), keeping
    /// `hold` alive until the batch has committed or failed, even if nobody waits for the
    /// answer (blob-log records must not be reclaimed before the rows that point at them are
    /// visible). Await the result with [`answer`].
    pub(super) fn enqueue_holding<T, F>(&self, hold: impl Send + 'static, work: F) -> Answer<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.enqueue(work, Some(Box::new(hold)))
    }

    fn enqueue<T, F>(&self, work: F, hold: Option<Box<dyn Send>>) -> Answer<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = TypedJob {
            work: Some(work),
            result: None,
            reply,
            _hold: hold,
        };
        self.tx
            .send(Box::new(job))
            .map_err(|_| StoreError::Unavailable("store writer stopped"))?;
        Ok(rx)
    }
}

/// A queued job's answer, to await with [`answer`].
pub(super) type Answer<T> = Result<oneshot::Receiver<Result<T>>>;

/// Waits for the answer of a job queued with [`Writer::enqueue_holding`].
pub(super) async fn answer<T>(queued: Answer<T>) -> Result<T> {
    queued?
        .await
        .map_err(|_| StoreError::Unavailable("store writer stopped"))?
}

fn run_writer(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn Job>>,
    wal_pages: &AtomicI64,
    checkpoint: &mpsc::SyncSender<()>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = run_batch(&conn, &mut batch);
        if let Err(e) = &outcome {
            tracing::error!("store commit failed for {} jobs: {e}", batch.len());
        }
        let err = outcome.err().map(|e| e.to_string());
        for job in batch {
            job.finish(err.clone());
        }
        let pages = wal_pages.load(Ordering::Relaxed);
        if pages >= FORCE_CHECKPOINT_PAGES {
            // Callers were answered already; this delays only the next batch.
            if let Err(e) = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                tracing::debug!("writer checkpoint skipped: {e}");
            }
            wal_pages.store(0, Ordering::Relaxed);
        } else if pages >= WAKE_CHECKPOINT_PAGES {
            let _ = checkpoint.try_send(());
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    // Prepared once, not parsed again for every batch and job.
    let exec = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    // A ROLLBACK that failed after an earlier batch's error left its transaction open: end
    // it now, or every later BEGIN fails and the store takes no more writes.
    if !conn.is_autocommit() {
        exec("ROLLBACK")?;
    }
    // IMMEDIATE takes the write lock now, waiting (busy_timeout) for an admin CLI process.
    exec("BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        let step = (|| {
            exec("SAVEPOINT job")?;
            if !job.run(conn) {
                exec("ROLLBACK TO job")?;
            }
            exec("RELEASE job")
        })();
        if let Err(e) = step {
            let _ = exec("ROLLBACK");
            return Err(e);
        }
    }
    if let Err(e) = exec("COMMIT") {
        let _ = exec("ROLLBACK");
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_left_open_by_a_failed_rollback_is_ended_by_the_next_batch() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (1)")
            .unwrap();
        let (reply, _rx) = oneshot::channel();
        let job = TypedJob {
            work: Some(|c: &Connection| Ok(c.execute("INSERT INTO t VALUES (2)", [])?)),
            result: None,
            reply,
            _hold: None,
        };
        let mut batch: Vec<Box<dyn Job>> = vec![Box::new(job)];
        run_batch(&conn, &mut batch).unwrap();
        assert!(conn.is_autocommit());
        let rows: Vec<i64> = conn
            .prepare("SELECT x FROM t")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [2],
            "the abandoned write is rolled back, the batch's kept"
        );
    }
}
