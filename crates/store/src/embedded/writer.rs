//! Group commit: one write connection runs every mutation, in batches.
//!
//! Callers enqueue jobs; whoever commits next takes whatever is queued (up to [`MAX_BATCH`]),
//! runs each job inside its own SAVEPOINT within one transaction, commits once (one WAL fsync
//! with `synchronous=FULL`), and only then answers every caller. While one batch is being
//! fsync'd the next one accumulates, so the number of fsyncs per second stays bounded while
//! throughput grows with concurrency. A failing job rolls back only its own savepoint.
//!
//! Who commits: the writer thread, except when it is idle and the caller is a task on the
//! multi-threaded runtime. Such a caller runs the batch itself (`block_in_place`), sparing
//! the two thread hand-offs (to the writer and back) that cost a lone sender about a tenth of
//! each delivery. Anything queued meanwhile goes to the writer thread, so under load it
//! commits and callers only queue.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, mpsc};

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

/// Handle for submitting jobs. The writer thread stops once every handle is gone.
#[derive(Clone)]
pub(super) struct Writer {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared.state).stopped = true;
        self.shared.wake.notify_all();
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread: jobs queued while nobody commits, or the last handle gone.
    wake: Condvar,
    /// The write connection, used by whoever holds `State::committing`.
    conn: Mutex<Connection>,
    wal_pages: Arc<AtomicI64>,
    checkpoint: mpsc::SyncSender<()>,
}

#[derive(Default)]
struct State {
    queue: Vec<Box<dyn Job>>,
    /// A batch is running (on the writer thread or a leading caller).
    committing: bool,
    stopped: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            conn: Mutex::new(conn),
            wal_pages,
            checkpoint,
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(&thread_shared))
            .expect("spawning the store writer thread");
        Ok(Writer {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// Runs `work` in the next batch; resolves once the batch is durable.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, rx) = job(work, None);
        if let Some(job) = self.try_lead(job) {
            self.queue(job)?;
        }
        answer(Ok(rx)).await
    }

    /// Runs a batch with `job` on this thread if the writer is idle and this caller may
    /// (see [`can_lead`]); otherwise gives the job back.
    fn try_lead(&self, job: Box<dyn Job>) -> Option<Box<dyn Job>> {
        let shared = &self.handle.shared;
        if !can_lead() {
            return Some(job);
        }
        {
            let mut state = lock(&shared.state);
            if state.committing || state.stopped {
                return Some(job);
            }
            state.committing = true;
            state.queue.push(job);
        }
        tokio::task::block_in_place(|| lead(shared));
        None
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
        let (job, rx) = job(work, Some(Box::new(hold)));
        self.queue(job)?;
        Ok(rx)
    }

    /// Hands `job` to whoever commits next.
    fn queue(&self, job: Box<dyn Job>) -> Result<()> {
        let shared = &self.handle.shared;
        let mut state = lock(&shared.state);
        if state.stopped {
            return Err(StoreError::Unavailable("store writer stopped"));
        }
        state.queue.push(job);
        if !state.committing {
            shared.wake.notify_one();
        }
        Ok(())
    }
}

fn job<T, F>(work: F, hold: Option<Box<dyn Send>>) -> (Box<dyn Job>, oneshot::Receiver<Result<T>>)
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
    (Box::new(job), rx)
}

/// Whether this caller may run a batch on its own thread: only a task on the multi-threaded
/// runtime (`block_in_place` hands its other tasks to another worker meanwhile).
fn can_lead() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Runs one batch on the caller's thread (it set `committing`), then leaves whatever was
/// queued meanwhile to the writer thread.
fn lead(shared: &Shared) {
    let mut batch = take_batch(&mut lock(&shared.state));
    commit(shared, &mut batch);
    let mut state = lock(&shared.state);
    state.committing = false;
    if !state.queue.is_empty() {
        shared.wake.notify_one();
    }
}

fn take_batch(state: &mut State) -> Vec<Box<dyn Job>> {
    let n = state.queue.len().min(MAX_BATCH);
    state.queue.drain(..n).collect()
}

/// A queued job's answer, to await with [`answer`].
pub(super) type Answer<T> = Result<oneshot::Receiver<Result<T>>>;

/// Waits for the answer of a job queued with [`Writer::enqueue_holding`].
pub(super) async fn answer<T>(queued: Answer<T>) -> Result<T> {
    queued?
        .await
        .map_err(|_| StoreError::Unavailable("store writer stopped"))?
}

fn run_writer(shared: &Shared) {
    loop {
        let mut batch = {
            let mut state = lock(&shared.state);
            while state.committing || (state.queue.is_empty() && !state.stopped) {
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.queue.is_empty() {
                return; // stopped, nothing left
            }
            state.committing = true;
            take_batch(&mut state)
        };
        commit(shared, &mut batch);
        lock(&shared.state).committing = false;
    }
}

/// Runs and commits `batch`, answers its callers, and keeps the WAL in bounds.
fn commit(shared: &Shared, batch: &mut Vec<Box<dyn Job>>) {
    let conn = lock(&shared.conn);
    let outcome = run_batch(&conn, batch);
    if let Err(e) = &outcome {
        tracing::error!("store commit failed for {} jobs: {e}", batch.len());
    }
    let err = outcome.err().map(|e| e.to_string());
    for job in batch.drain(..) {
        job.finish(err.clone());
    }
    let pages = shared.wal_pages.load(Ordering::Relaxed);
    if pages >= FORCE_CHECKPOINT_PAGES {
        // Callers were answered already; this delays only the next batch.
        if let Err(e) = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            tracing::debug!("writer checkpoint skipped: {e}");
        }
        shared.wal_pages.store(0, Ordering::Relaxed);
    } else if pages >= WAKE_CHECKPOINT_PAGES {
        let _ = shared.checkpoint.try_send(());
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock now, waiting (busy_timeout) for an admin CLI process.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        let step = (|| {
            conn.execute_batch("SAVEPOINT job")?;
            if job.run(conn) {
                conn.execute_batch("RELEASE job")
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            }
        })();
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e);
    }
    Ok(())
}
