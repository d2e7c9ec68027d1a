//! The queue runner: the scheduler that sends queued mail on.
//!
//! Implementation notes:
//! * One main task claims due entries from the store (a lease: a runner that dies leaves
//!   them to be retried, never lost) when woken by a new delivery, by `postern queue retry`
//!   (noticed within a second), or when the earliest entry falls due.
//! * An entry's pending recipients are grouped per [`Destination`] (domain, or the configured
//!   next hop). Each destination has a FIFO of jobs and up to `max_per_destination` workers;
//!   a worker holds one connection (under the global `max_connections` semaphore) and sends
//!   job after job over it, up to `messages_per_connection`. A destination starts with one
//!   worker; each worker that delivers while jobs wait starts another (slow start).
//! * When every destination of an entry has reported, one store write records the results,
//!   the next attempt (exponential backoff) and, for permanent failures or expiry, the DSN
//!   to the sender: the entry is removed only once nothing is pending, with its bounce in the
//!   same transaction.
//! * A connection failure with no other live connection to the destination fails every job
//!   waiting for it, so a dead host costs one connect per attempt, not one per message.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::{QueueEntry, QueueOutcome, QueueUpdate, RecipientResult, RecipientStatus, Store};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::task::TaskTracker;

use super::client::{Envelope, OpenError, Session, SessionConfig, TlsPolicy};
use super::dns::Resolver;
use super::dsn::{self, Action, DsnRecipient};
use super::route::{self, Destination, Hop};
use super::{Clock, Failure, RelaySettings, tls};
use crate::{Deliverer, QueueError};

/// How long a claim holds an entry: longer than any attempt can take (the RFC 5321
/// timeouts add up to about 25 minutes), so only a runner that died lets one lapse.
const LEASE: i64 = 3600;
/// Entries claimed per store write.
const CLAIM_BATCH: usize = 256;
/// Entries in flight at most; beyond this the runner waits for attempts to finish.
const MAX_IN_FLIGHT: usize = 4096;
/// The longest the main loop sleeps without looking at the queue (so `postern queue retry`
/// from another process takes effect within this).
const POLL: Duration = Duration::from_secs(1);

/// The queue runner. [`QueueRunner::run`] is its main task.
pub struct QueueRunner {
    inner: Arc<Inner>,
}

/// Wakes a running queue runner (tests that move the clock, admin actions in-process).
#[derive(Clone)]
pub struct RunnerHandle {
    wake: Arc<Notify>,
}

impl RunnerHandle {
    /// Makes the runner look at the queue now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

struct Inner {
    store: Store,
    deliverer: Deliverer,
    settings: RelaySettings,
    resolver: Arc<dyn Resolver>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    state: Mutex<State>,
    connections: Arc<Semaphore>,
    opportunistic: Arc<rustls::ClientConfig>,
    verified: Arc<rustls::ClientConfig>,
    tasks: TaskTracker,
    stop: watch::Receiver<bool>,
    stop_tx: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    in_flight: HashSet<i64>,
    destinations: HashMap<Destination, DestinationQueue>,
}

#[derive(Default)]
struct DestinationQueue {
    jobs: VecDeque<Job>,
    /// Workers started and not finished.
    workers: usize,
    /// Workers holding an open session.
    connected: usize,
}

/// Some recipients of one entry, for one destination.
struct Job {
    attempt: Arc<Attempt>,
    recipients: Vec<String>,
}

/// One delivery attempt of one entry, across its destinations.
struct Attempt {
    entry: QueueEntry,
    /// Destinations that have not reported yet.
    remaining: AtomicUsize,
    results: Mutex<Vec<RecipientResult>>,
}

impl QueueRunner {
    /// A runner over `store`; `deliverer` must be the one SMTP uses (its queue signal wakes
    /// the runner on new mail, and the runner reads time from its clock).
    pub fn new(
        store: Store,
        deliverer: Deliverer,
        settings: RelaySettings,
        resolver: Arc<dyn Resolver>,
    ) -> QueueRunner {
        let clock = deliverer.clock();
        let (stop_tx, stop) = watch::channel(false);
        let connections = Arc::new(Semaphore::new(settings.max_connections.max(1)));
        QueueRunner {
            inner: Arc::new(Inner {
                wake: deliverer.queue_signal(),
                store,
                deliverer,
                settings,
                resolver,
                clock,
                state: Mutex::new(State::default()),
                connections,
                opportunistic: tls::opportunistic(),
                verified: tls::verified(),
                tasks: TaskTracker::new(),
                stop,
                stop_tx,
            }),
        }
    }

    /// A handle to wake the runner.
    pub fn handle(&self) -> RunnerHandle {
        RunnerHandle {
            wake: self.inner.wake.clone(),
        }
    }

    /// Runs until `shutdown` resolves: claims due mail and delivers it. In-flight sessions
    /// are then dropped (their entries stay leased, and are retried at the next start).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let inner = self.inner;
        let now = inner.clock.now();
        match inner.store.release_queue_leases(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} queue entries claimed before a restart are due again"),
            Err(e) => tracing::error!("releasing queue leases: {e}"),
        }
        tokio::pin!(shutdown);
        loop {
            let more = inner.clone().claim_due().await;
            if more {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = inner.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = &mut shutdown => break,
            }
        }
        let _ = inner.stop_tx.send(true);
        inner.tasks.close();
        // Result writes are short; sessions stop at once.
        let _ = tokio::time::timeout(Duration::from_secs(10), inner.tasks.wait()).await;
    }
}

impl Inner {
    /// Claims what is due and starts it; returns whether more may be due right away.
    async fn claim_due(self: Arc<Self>) -> bool {
        let now = self.clock.now();
        match self.store.next_queue_due().await {
            Ok(Some(t)) if t <= now => {}
            Ok(_) => return false,
            Err(e) => {
                tracing::error!("reading the queue: {e}");
                return false;
            }
        }
        let room = MAX_IN_FLIGHT.saturating_sub(self.lock().in_flight.len());
        if room == 0 {
            return false;
        }
        let limit = room.min(CLAIM_BATCH);
        let entries = match self.store.claim_queue(now, now + LEASE, limit).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("claiming queue entries: {e}");
                return false;
            }
        };
        let full = entries.len() == limit;
        for entry in entries {
            self.clone().start(entry);
        }
        full
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A route for the domain wins (like Postfix's transport map over its relayhost), then
    /// the smarthost, then MX.
    fn destination(&self, domain: &str) -> Destination {
        if let Some(hop) = self.settings.routes.get(domain) {
            return Destination::NextHop {
                host: hop.host.clone(),
                port: hop.port,
            };
        }
        match &self.settings.smarthost {
            Some(s) => Destination::NextHop {
                host: s.hop.host.clone(),
                port: s.hop.port,
            },
            None => Destination::Domain(domain.to_owned()),
        }
    }

    /// Starts an attempt for a claimed entry.
    fn start(self: Arc<Self>, entry: QueueEntry) {
        if !self.lock().in_flight.insert(entry.id) {
            return; // still being attempted (claimed again after `queue retry`)
        }
        let mut groups: Vec<(Destination, Vec<String>)> = Vec::new();
        for r in entry.pending() {
            let dest = self.destination(&store::domain_of(&r.address).to_ascii_lowercase());
            match groups.iter_mut().find(|(d, _)| *d == dest) {
                Some((_, list)) => list.push(r.address.clone()),
                None => groups.push((dest, vec![r.address.clone()])),
            }
        }
        let attempt = Arc::new(Attempt {
            remaining: AtomicUsize::new(groups.len()),
            results: Mutex::new(Vec::new()),
            entry,
        });
        if groups.is_empty() {
            // Nothing pending (an entry left behind by a crash): just finish it.
            self.tasks.spawn(self.clone().finish(attempt));
            return;
        }
        let mut spawn = Vec::new();
        {
            let mut state = self.lock();
            for (dest, recipients) in groups {
                let q = state.destinations.entry(dest.clone()).or_default();
                q.jobs.push_back(Job {
                    attempt: attempt.clone(),
                    recipients,
                });
                // One worker to begin with; more once it has proved the destination works
                // (see `worker`), so a dead host costs one connection attempt.
                if q.workers == 0 {
                    q.workers += 1;
                    spawn.push(dest);
                }
            }
        }
        for dest in spawn {
            self.spawn_worker(dest);
        }
    }

    fn spawn_worker(self: &Arc<Self>, dest: Destination) {
        let me = self.clone();
        let mut stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = me.clone().worker(&dest) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            me.worker_done(dest);
        });
    }

    /// A worker ended: if jobs are left and no worker will take them, start one.
    fn worker_done(self: &Arc<Self>, dest: Destination) {
        if *self.stop.borrow() {
            return;
        }
        let respawn = {
            let mut state = self.lock();
            let Some(q) = state.destinations.get_mut(&dest) else {
                return;
            };
            q.workers -= 1;
            if !q.jobs.is_empty() && q.workers == 0 {
                q.workers += 1;
                true
            } else {
                if q.jobs.is_empty() && q.workers == 0 {
                    state.destinations.remove(&dest);
                }
                false
            }
        };
        if respawn {
            self.spawn_worker(dest);
        }
    }

    /// Slow start: while jobs wait, a worker whose session works adds another worker, up to
    /// the destination's limit, so concurrency doubles per message round while there is a
    /// backlog.
    fn grow(self: &Arc<Self>, dest: &Destination) {
        let spawn = {
            let mut state = self.lock();
            match state.destinations.get_mut(dest) {
                Some(q)
                    if !q.jobs.is_empty()
                        && q.workers < self.settings.max_per_destination.max(1) =>
                {
                    q.workers += 1;
                    true
                }
                _ => false,
            }
        };
        if spawn {
            self.spawn_worker(dest.clone());
        }
    }

    fn next_job(&self, dest: &Destination) -> Option<Job> {
        self.lock().destinations.get_mut(dest)?.jobs.pop_front()
    }

    fn has_jobs(&self, dest: &Destination) -> bool {
        self.lock()
            .destinations
            .get(dest)
            .is_some_and(|q| !q.jobs.is_empty())
    }

    /// Fails every job waiting for `dest` unless another worker has a live session to it.
    fn fail_waiting(self: &Arc<Self>, dest: &Destination, failure: &Failure) {
        let jobs: Vec<Job> = {
            let mut state = self.lock();
            let Some(q) = state.destinations.get_mut(dest) else {
                return;
            };
            if q.connected > 0 {
                return;
            }
            q.jobs.drain(..).collect()
        };
        if !jobs.is_empty() {
            tracing::info!(
                destination = %dest,
                messages = jobs.len(),
                "deferring or bouncing: {}",
                failure.text
            );
        }
        for job in jobs {
            let results = job
                .recipients
                .iter()
                .map(|_| Err(failure.clone()))
                .collect();
            self.report(job, results, None);
        }
    }

    async fn worker(self: Arc<Self>, dest: &Destination) {
        let Ok(_permit) = self.connections.clone().acquire_owned().await else {
            return;
        };
        if !self.has_jobs(dest) {
            return;
        }
        let hops = match route::hops(
            dest,
            &*self.resolver,
            self.settings.port,
            &self.settings.hostname,
        )
        .await
        {
            Ok(h) => h,
            Err(f) => {
                self.fail_waiting(dest, &f);
                return;
            }
        };
        let mut session = match self.connect(dest, &hops).await {
            Ok(s) => s,
            Err(f) => {
                self.fail_waiting(dest, &f);
                return;
            }
        };
        if let Some(q) = self.lock().destinations.get_mut(dest) {
            q.connected += 1;
        }
        let mut sent = 0;
        while session.usable() && sent < self.settings.messages_per_connection.max(1) {
            let Some(job) = self.next_job(dest) else {
                break;
            };
            let entry = &job.attempt.entry;
            let results = match self.store.read_blob(entry.blob).await {
                Ok(message) => {
                    let env = Envelope {
                        sender: entry.sender.as_deref(),
                        recipients: &job.recipients,
                    };
                    session.send(env, &message).await
                }
                Err(e) => {
                    tracing::error!(queue_id = entry.id, "reading a queued message: {e}");
                    let f = Failure::temporary("4.3.0", format!("local store error: {e}"));
                    job.recipients.iter().map(|_| Err(f.clone())).collect()
                }
            };
            let peer = session.peer().to_owned();
            self.report(job, results, Some(peer));
            sent += 1;
            if session.usable() {
                self.grow(dest);
            }
        }
        if let Some(q) = self.lock().destinations.get_mut(dest) {
            q.connected -= 1;
        }
        session.quit().await;
    }

    /// Opens a session to the first host that takes one. Host-level failures fall through to
    /// the next host (RFC 5321 5.1); the result is permanent only if every host said so.
    async fn connect(&self, dest: &Destination, hops: &[Hop]) -> Result<Session, Failure> {
        let smarthost = matches!(dest, Destination::NextHop { .. })
            .then_some(self.settings.smarthost.as_ref())
            .flatten();
        let mut last: Option<Failure> = None;
        let mut all_permanent = true;
        for hop in hops {
            for addr in &hop.addrs {
                let mut config = SessionConfig {
                    helo: self.settings.hostname.clone(),
                    timeouts: self.settings.timeouts.clone(),
                    tls: TlsPolicy::Opportunistic(self.opportunistic.clone()),
                    auth: None,
                    source: self.settings.source_address,
                };
                if let Some(s) = smarthost {
                    let tls = if s.verify_certificate {
                        self.verified.clone()
                    } else {
                        self.opportunistic.clone()
                    };
                    config.auth = s.credentials.clone();
                    // A password crosses the network only under TLS (loopback excepted).
                    config.tls = if s.credentials.is_some() && !addr.ip().is_loopback() {
                        TlsPolicy::Required(tls)
                    } else {
                        TlsPolicy::Opportunistic(tls)
                    };
                }
                let opened = match Session::open(&hop.name, *addr, &config).await {
                    Err(OpenError {
                        tls_failed: true,
                        failure,
                    }) if matches!(config.tls, TlsPolicy::Opportunistic(_)) => {
                        // Opportunistic TLS that fails falls back to plaintext, as other
                        // MTAs do; the peer offered it, but the mail matters more.
                        tracing::info!("{}; retrying without TLS", failure.text);
                        config.tls = TlsPolicy::Off;
                        Session::open(&hop.name, *addr, &config).await
                    }
                    other => other,
                };
                match opened {
                    Ok(s) if s.is_named(&self.settings.hostname) => {
                        // RFC 5321 5.1: never deliver to ourselves through MX.
                        let f = Failure::permanent(
                            "5.4.6",
                            format!("mail for {dest} loops back to myself ({})", s.peer()),
                        );
                        s.quit().await;
                        last = Some(f);
                    }
                    Ok(s) => {
                        tracing::debug!(destination = %dest, peer = s.peer(), tls = s.is_tls(), "connected");
                        return Ok(s);
                    }
                    Err(e) => {
                        tracing::debug!(destination = %dest, "{}", e.failure.text);
                        all_permanent &= e.failure.permanent;
                        last = Some(e.failure);
                    }
                }
            }
        }
        let mut f = last.unwrap_or_else(|| Failure::temporary("4.4.4", "no host to try"));
        if !all_permanent && f.permanent {
            f.permanent = false;
            f.status = "4.4.1".into();
        }
        Err(f)
    }

    /// Records one destination's results for an entry; the last one finishes the attempt.
    fn report(
        self: &Arc<Self>,
        job: Job,
        results: Vec<super::client::RcptResult>,
        peer: Option<String>,
    ) {
        let converted = job
            .recipients
            .iter()
            .zip(results)
            .map(|(address, r)| match r {
                Ok(text) => RecipientResult {
                    address: address.clone(),
                    status: RecipientStatus::Delivered,
                    error: Some(text),
                    status_code: Some("2.0.0".into()),
                    remote_mta: peer.clone(),
                },
                Err(f) => RecipientResult {
                    address: address.clone(),
                    status: if f.permanent {
                        RecipientStatus::Failed
                    } else {
                        RecipientStatus::Pending
                    },
                    error: Some(f.text),
                    status_code: Some(f.status),
                    remote_mta: f.remote_mta,
                },
            });
        job.attempt
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(converted);
        if job.attempt.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Finishing is not cut short at shutdown: it is one short store write.
            self.tasks.spawn(self.clone().finish(job.attempt));
        }
    }

    /// Applies an attempt's results: next attempt, bounces, delay warning.
    async fn finish(self: Arc<Self>, attempt: Arc<Attempt>) {
        let entry = &attempt.entry;
        let now = self.clock.now();
        let mut results =
            std::mem::take(&mut *attempt.results.lock().unwrap_or_else(|p| p.into_inner()));
        for r in &results {
            match r.status {
                RecipientStatus::Delivered => tracing::info!(
                    queue_id = entry.id, to = %r.address, relay = r.remote_mta.as_deref().unwrap_or(""),
                    "delivered: {}", r.error.as_deref().unwrap_or("")
                ),
                RecipientStatus::Failed => tracing::info!(
                    queue_id = entry.id, to = %r.address, "bounced: {}", r.error.as_deref().unwrap_or("")
                ),
                RecipientStatus::Pending => tracing::info!(
                    queue_id = entry.id, to = %r.address, "deferred: {}", r.error.as_deref().unwrap_or("")
                ),
            }
        }
        let lifetime = self.settings.lifetime.as_secs() as i64;
        let expires = entry.created + lifetime;
        if now >= expires {
            for r in results
                .iter_mut()
                .filter(|r| r.status == RecipientStatus::Pending)
            {
                r.status = RecipientStatus::Failed;
                let last = r.error.take().unwrap_or_default();
                r.error = Some(format!(
                    "{last} (gave up: in the queue for more than {} hours)",
                    lifetime / 3600
                ));
            }
        }
        let mut notice = Vec::new();
        for r in results
            .iter()
            .filter(|r| r.status == RecipientStatus::Failed)
        {
            notice.push(dsn_recipient(r, Action::Failed));
        }
        let warn_after = self.settings.delay_warning.map(|d| d.as_secs() as i64);
        let warn = !entry.warned
            && warn_after.is_some_and(|w| now - entry.created >= w)
            && results.iter().any(|r| r.status == RecipientStatus::Pending);
        if warn {
            for r in results
                .iter()
                .filter(|r| r.status == RecipientStatus::Pending)
            {
                notice.push(dsn_recipient(r, Action::Delayed));
            }
        }
        let mut warn = warn;
        let mut bounce_failed = false;
        let notice = match (&entry.sender, notice.is_empty()) {
            // RFC 5321 6.1 / RFC 3464: never a notice about a notice (null sender).
            (None, _) | (_, true) => None,
            (Some(sender), false) => match self.notice(entry, sender, notice, now).await {
                Ok(n) => n,
                Err(e) => {
                    // Without a durable bounce the failures must not be recorded: they stay
                    // pending (and are bounced at a later attempt). What was delivered is
                    // still recorded, or those recipients would get the message again.
                    tracing::error!(queue_id = entry.id, "building a bounce: {e}");
                    for r in results
                        .iter_mut()
                        .filter(|r| r.status == RecipientStatus::Failed)
                    {
                        r.status = RecipientStatus::Pending;
                    }
                    warn = false;
                    bounce_failed = true;
                    None
                }
            },
        };
        let attempts = entry.attempts + 1;
        let update = QueueUpdate {
            id: entry.id,
            results,
            // After a failed bounce, not capped at the expiry (which may have passed): the
            // bounce is tried again at the usual pace, not every second.
            next_attempt: if bounce_failed {
                now + self.backoff(attempts)
            } else {
                now + self.backoff(attempts).min(expires - now).max(1)
            },
            attempted_at: Some(now),
            warned: warn,
            notice,
        };
        match self.store.update_queue(update).await {
            Ok(QueueOutcome::Removed) => tracing::debug!(queue_id = entry.id, "queue entry done"),
            Ok(QueueOutcome::Pending) => {}
            Ok(QueueOutcome::Gone) => {
                tracing::info!(
                    queue_id = entry.id,
                    "queue entry was deleted during delivery"
                )
            }
            Err(e) => tracing::error!(queue_id = entry.id, "recording delivery results: {e}"),
        }
        self.lock().in_flight.remove(&entry.id);
        self.wake.notify_one();
    }

    /// Seconds until attempt number `attempts + 1`: doubling from `retry_initial`, capped at
    /// `retry_max`, with 10 % jitter so entries that failed together do not retry together.
    fn backoff(&self, attempts: u32) -> i64 {
        let initial = self.settings.retry_initial.as_secs().max(1) as i64;
        let max = self.settings.retry_max.as_secs().max(1) as i64;
        let d = initial
            .saturating_mul(1i64 << attempts.saturating_sub(1).min(30))
            .min(max);
        d + fastrand::i64(0..=d / 10)
    }

    /// The DSN for `recipients` as a delivery to `sender`.
    async fn notice(
        &self,
        entry: &QueueEntry,
        sender: &str,
        recipients: Vec<DsnRecipient>,
        now: i64,
    ) -> Result<Option<store::Delivery>, QueueError> {
        let original = self.store.read_blob(entry.blob).await?;
        let message = dsn::build(&dsn::Dsn {
            hostname: &self.settings.hostname,
            to: sender,
            queue_id: entry.id,
            arrival: entry.created,
            now,
            retry_until: Some(entry.created + self.settings.lifetime.as_secs() as i64),
            recipients,
            original: &original,
        });
        self.deliverer.notice_delivery(sender, message, now).await
    }
}

/// A recipient's part of a DSN, from its delivery result.
pub(crate) fn dsn_recipient(r: &RecipientResult, action: Action) -> DsnRecipient {
    DsnRecipient {
        address: r.address.clone(),
        action,
        status: r.status_code.clone().unwrap_or_else(|| {
            if action == Action::Failed {
                "5.0.0"
            } else {
                "4.0.0"
            }
            .into()
        }),
        diagnostic: r.error.clone(),
        remote_mta: r.remote_mta.clone(),
    }
}
