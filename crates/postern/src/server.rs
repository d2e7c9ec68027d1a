//! Wiring: opens the store, builds the authenticator and deliverer, binds every configured
//! listener, starts the queue runner and runs them until shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use auth::{Authenticator, FailureLimiter};
use imap_server::ImapServer;
use net::{ConnLimits, ShutdownTrigger, TlsAcceptor, TlsMode};
use pop3_server::{MaildropLocks, Pop3Server};
use queue::{Clock, Deliverer, HickoryResolver, QueueRunner, RunnerHandle, SystemClock};
use smtp_server::{Role, Settings, SmtpServer};
use store::Store;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// How long shutdown waits for sessions to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A started server.
pub struct Running {
    /// Each active listener's name and the address it is bound to.
    pub listeners: Vec<(&'static str, SocketAddr)>,
    /// Configured listeners this version does not serve yet, with their addresses.
    pub unavailable: Vec<(&'static str, SocketAddr)>,
    /// The store the server uses.
    pub store: Store,
    /// Wakes the queue runner.
    pub queue: RunnerHandle,
    trigger: ShutdownTrigger,
    tracker: TaskTracker,
}

impl Running {
    /// The bound address of listener `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }

    /// Stops accepting, lets sessions finish (bounded), and returns.
    pub async fn shutdown(self) {
        self.trigger.trigger();
        self.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("sessions still running after {DRAIN_TIMEOUT:?}; exiting anyway");
        }
    }
}

/// What starting a listener needs besides its protocol handler.
struct Listeners {
    /// Each started listener's name and bound address.
    bound: Vec<(&'static str, SocketAddr)>,
    acceptor: TlsAcceptor,
    limits: ConnLimits,
    shutdown: net::Shutdown,
    tracker: TaskTracker,
}

impl Listeners {
    /// Binds listener `name` (if configured) and spawns its accept loop; `make` builds the
    /// protocol handler, given the STARTTLS acceptor (None on implicit-TLS listeners).
    async fn start<H: net::Handler>(
        &mut self,
        name: &'static str,
        addr: Option<SocketAddr>,
        implicit: bool,
        make: impl FnOnce(Option<TlsAcceptor>) -> H,
    ) -> anyhow::Result<()> {
        let Some(addr) = addr else {
            return Ok(());
        };
        let socket = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen.{name}: cannot listen on {addr}"))?;
        self.bound.push((name, socket.local_addr()?));
        let (tls, starttls) = if implicit {
            (TlsMode::Implicit(self.acceptor.clone()), None)
        } else {
            (TlsMode::Plain, Some(self.acceptor.clone()))
        };
        self.tracker.spawn(net::serve(
            socket,
            tls,
            self.limits.clone(),
            Arc::new(make(starttls)),
            self.shutdown.clone(),
            self.tracker.clone(),
        ));
        Ok(())
    }
}

/// What tests may replace.
#[derive(Default)]
pub struct Options {
    /// The clock mail is stamped with and the queue runner reads (default: the system clock).
    pub clock: Option<Arc<dyn Clock>>,
}

/// Opens the store and starts every configured listener and the queue runner.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    start_with(config, Options::default()).await
}

/// Holds an exclusive lock on `data_dir/queue.lock` while the queue runner runs: one runner
/// per store, so a runner starting up may take back the leases a crashed one left.
fn lock_queue(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("queue.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            anyhow::anyhow!(
                "another postern is serving {} (it holds {})",
                data_dir.display(),
                path.display()
            )
        },
    )?;
    Ok(file)
}

/// [`start`] with test seams.
pub async fn start_with(config: &Config, options: Options) -> anyhow::Result<Running> {
    let relay = config.relay_settings()?;
    let store_options = store::EmbeddedOptions {
        wal_preallocate: config.store.wal_preallocate_mib << 20,
        log_zeros_ahead: config.store.log_zeros_ahead_mib << 20,
    };
    let store = Store::open_embedded_with(&config.data_dir, &store_options)
        .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    let queue_lock = lock_queue(&config.data_dir)?;
    let resolver = HickoryResolver::new(config.dns.nameservers.as_deref())
        .context("dns: cannot set up the resolver")?;
    let tls_files = match (&config.tls.cert, &config.tls.key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    let (acceptor, files) = net::load_tls(tls_files, &config.data_dir, &config.hostname)?;
    tracing::info!(cert = %files.cert.display(), self_signed = files.generated, "TLS ready");

    let limiter = FailureLimiter::new(
        config.auth.max_failures,
        Duration::from_secs(config.auth.failure_window),
        Duration::from_secs(config.auth.lockout),
    );
    let auth = Authenticator::new(store.clone(), limiter);
    let deliverer = Deliverer::with_clock(
        store.clone(),
        config.limits.mailbox_quota,
        options.clock.unwrap_or_else(|| Arc::new(SystemClock)),
    );
    let (trigger, shutdown) = ShutdownTrigger::new();
    let tracker = TaskTracker::new();
    // Message summaries for SEARCH and SORT, made in the background as mail arrives.
    let mut stop = shutdown.clone();
    tracker.spawn(indexer::run(
        store.clone(),
        async move { stop.wait().await },
    ));
    // Outbound delivery of queued mail.
    let runner = QueueRunner::new(store.clone(), deliverer.clone(), relay, Arc::new(resolver));
    let queue = runner.handle();
    let mut stop = shutdown.clone();
    tracker.spawn(async move {
        runner.run(async move { stop.wait().await }).await;
        drop(queue_lock);
    });
    let l = &config.limits;
    let conn_limits = ConnLimits {
        max_connections: l.max_connections,
        max_per_ip: l.max_connections_per_ip,
        handshake_timeout: Duration::from_secs(30),
    };
    let smtp_settings = |role| Settings {
        hostname: config.hostname.clone(),
        role,
        max_message_size: l.max_message_size as usize,
        max_recipients: l.max_recipients,
        command_timeout: Duration::from_secs(l.smtp_command_timeout),
        data_timeout: Duration::from_secs(l.smtp_data_timeout),
        max_errors: l.smtp_max_errors,
        allow_plaintext_auth: config.auth.allow_plaintext,
        plaintext_auth_on_loopback: config.auth.plaintext_on_loopback,
    };

    let listen = config.listeners();
    let smtp_listeners = [
        ("smtp", listen.smtp, Role::Mx, false),
        ("submission", listen.submission, Role::Submission, false),
        ("submissions", listen.submissions, Role::Submission, true),
    ];
    let mut listeners = Listeners {
        bound: Vec::new(),
        acceptor,
        limits: conn_limits,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    };
    for (name, addr, role, implicit) in smtp_listeners {
        listeners
            .start(name, addr, implicit, |starttls| {
                SmtpServer::new(
                    smtp_settings(role),
                    deliverer.clone(),
                    auth.clone(),
                    starttls,
                )
            })
            .await?;
    }
    let imap_settings = imap_server::Settings {
        hostname: config.hostname.clone(),
        max_append: l.max_message_size.min(u64::from(u32::MAX - (1 << 20))) as u32,
        unauthenticated_timeout: Duration::from_secs(60),
        authenticated_timeout: Duration::from_secs(l.imap_idle_timeout),
        allow_plaintext_auth: config.auth.allow_plaintext,
        plaintext_auth_on_loopback: config.auth.plaintext_on_loopback,
        max_bad_commands: 20,
        quota: l.mailbox_quota,
        literal_minus: config.imap.literal_minus,
    };
    for (name, addr, implicit) in [("imap", listen.imap, false), ("imaps", listen.imaps, true)] {
        listeners
            .start(name, addr, implicit, |starttls| {
                ImapServer::new(imap_settings.clone(), store.clone(), auth.clone(), starttls)
            })
            .await?;
    }
    let pop3_settings = pop3_server::Settings {
        hostname: config.hostname.clone(),
        login_timeout: Duration::from_secs(l.pop3_timeout.min(60)),
        timeout: Duration::from_secs(l.pop3_timeout),
        allow_plaintext_auth: config.auth.allow_plaintext,
        plaintext_auth_on_loopback: config.auth.plaintext_on_loopback,
        max_errors: 20,
    };
    // One lock table for both listeners: a maildrop is locked whichever port a client uses.
    let locks = MaildropLocks::new();
    for (name, addr, implicit) in [("pop3", listen.pop3, false), ("pop3s", listen.pop3s, true)] {
        listeners
            .start(name, addr, implicit, |starttls| {
                Pop3Server::new(
                    pop3_settings.clone(),
                    store.clone(),
                    auth.clone(),
                    locks.clone(),
                    starttls,
                )
            })
            .await?;
    }
    let unavailable = [("http", listen.http)]
        .into_iter()
        .filter_map(|(n, a)| a.map(|a| (n, a)))
        .collect();
    Ok(Running {
        listeners: listeners.bound,
        unavailable,
        store,
        queue,
        trigger,
        tracker,
    })
}
