//! The persistence layer: the one source of truth for domains, accounts, aliases, mailboxes,
//! messages and the outbound queue.
//!
//! Protocol code sees only [`Store`], a cheap-to-clone handle over the [`Backend`] trait, so a
//! PostgreSQL backend can be added without touching any protocol crate. The store never sees a
//! protocol type: addresses are plain lower-case strings, messages are raw bytes.
//!
//! Durability contract: every mutating call returns only after its effects are on disk
//! (fsync'd). Concurrent mutations are batched into one transaction and one fsync (group
//! commit), so durability does not cap throughput at one fsync per message.
//!
//! # Layout
//! * `types`: the records the store hands out and takes in.
//! * `error`: [`StoreError`].
//! * `embedded`: the default backend, SQLite in WAL mode with a group-committing writer thread.
#![deny(missing_docs)]

mod embedded;
mod error;
mod types;

use std::path::Path;
use std::sync::Arc;

pub use error::StoreError;
pub use types::*;

/// Result type of every store call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What every storage backend provides. Addresses and domains passed in must already be
/// normalised by the caller (see [`normalize_address`]); the backend stores them as given.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    // ---- domains
    /// Adds a hosted domain. [`StoreError::AlreadyExists`] if present.
    async fn add_domain(&self, domain: &str) -> Result<()>;
    /// Removes a hosted domain; refused with [`StoreError::Conflict`] while it has accounts or aliases.
    async fn remove_domain(&self, domain: &str) -> Result<()>;
    /// All hosted domains, sorted.
    async fn list_domains(&self) -> Result<Vec<String>>;
    /// Whether mail for `domain` is ours.
    async fn is_local_domain(&self, domain: &str) -> Result<bool>;

    // ---- accounts
    /// Creates an account with its default mailboxes ([`DEFAULT_MAILBOXES`]).
    async fn add_account(&self, address: &str, password_hash: &str) -> Result<AccountId>;
    /// Deletes an account, its mailboxes, messages and the aliases that point at it.
    async fn remove_account(&self, address: &str) -> Result<()>;
    /// Replaces the password hash of an account.
    async fn set_password(&self, address: &str, password_hash: &str) -> Result<()>;
    /// Accounts, optionally of one domain, sorted by address.
    async fn list_accounts(&self, domain: Option<&str>) -> Result<Vec<Account>>;
    /// The account with exactly this address and its password hash.
    async fn credentials(&self, address: &str) -> Result<Option<Credentials>>;

    // ---- aliases
    /// Adds `source -> target`. `source` is `local@domain` or `@domain` (catch-all).
    async fn add_alias(&self, source: &str, target: &str) -> Result<()>;
    /// Removes `source -> target`, or every target of `source` when `target` is `None`.
    async fn remove_alias(&self, source: &str, target: Option<&str>) -> Result<()>;
    /// Aliases, optionally of one domain, sorted.
    async fn list_aliases(&self, domain: Option<&str>) -> Result<Vec<Alias>>;
    /// What one exact address is: an account and/or the targets of aliases with that source.
    async fn lookup_address(&self, address: &str) -> Result<AddressLookup>;

    // ---- mailboxes and messages
    /// Mailboxes of an account, sorted by name, with message counts.
    async fn list_mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    /// Creates a mailbox ([`StoreError::AlreadyExists`] if present), with an optional RFC 6154
    /// special-use attribute.
    async fn create_mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox>;
    /// Creates a mailbox with a special-use attribute (CREATE-SPECIAL-USE).
    async fn create_mailbox_special(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<Mailbox>;
    /// Deletes a mailbox and its messages (INBOX cannot be deleted).
    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()>;
    /// Renames a mailbox and its children (`name/...`). Renaming INBOX moves its messages to a
    /// new mailbox and leaves INBOX empty (RFC 9051 6.3.6).
    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    /// Subscribed names of an account, sorted.
    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>>;
    /// Subscribes or unsubscribes a name.
    async fn set_subscribed(&self, account: AccountId, name: &str, on: bool) -> Result<()>;
    /// The mailbox with exactly this name.
    async fn mailbox_by_name(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>>;
    /// Octets stored in all mailboxes of an account (quota usage).
    async fn account_usage(&self, account: AccountId) -> Result<u64>;
    /// Aggregates of one mailbox (STATUS).
    async fn mailbox_status(&self, mailbox: MailboxId) -> Result<MailboxStatus>;
    /// The mailbox, its UIDs and its flag summary from one read transaction (SELECT).
    async fn snapshot(&self, mailbox: MailboxId) -> Result<MailboxSnapshot>;
    /// Messages added or changed and UIDs expunged after `modseq` (session resync, QRESYNC).
    async fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<MailboxChanges>;
    /// Changes flags of `uids`; with `unchanged_since`, only messages whose MODSEQ is not
    /// above it (CONDSTORE).
    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> Result<FlagUpdate>;
    /// Removes messages flagged `\Deleted` (only among `uids` when given); returns their UIDs.
    async fn expunge(&self, mailbox: MailboxId, uids: Option<Vec<Uid>>) -> Result<Vec<Uid>>;
    /// Removes exactly the messages of `uids` that still exist, whatever their flags (a POP3
    /// session's deletions at QUIT); returns the UIDs removed, ascending. Messages flagged
    /// `\Deleted` but not listed stay.
    async fn expunge_uids(&self, mailbox: MailboxId, uids: Vec<Uid>) -> Result<Vec<Uid>>;
    /// Copies messages to another mailbox of the same account; `remove` makes it a MOVE
    /// (the source copies are expunged in the same transaction).
    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
        remove: bool,
    ) -> Result<CopyResult>;
    /// A receiver that changes whenever this process commits a change to the mailbox; sessions
    /// wait on it in IDLE and then ask [`Backend::changes_since`].
    fn watch(&self, mailbox: MailboxId) -> tokio::sync::watch::Receiver<u64>;
    /// Metadata of every message of a mailbox, in UID order.
    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>>;
    /// The mailbox and each message's UID and sizes (stored and canonical CRLF), from one
    /// read transaction; reads no message bytes.
    async fn message_listing(&self, mailbox: MailboxId) -> Result<MessageListing>;
    /// Metadata of the messages of `uids` (ascending) that still exist, in UID order.
    async fn get_messages(&self, mailbox: MailboxId, uids: Vec<Uid>) -> Result<Vec<MessageMeta>>;
    /// The raw bytes of a stored message.
    async fn read_blob(&self, blob: BlobId) -> Result<Vec<u8>>;
    /// Appends messages to a mailbox in one durable transaction; returns their UIDs.
    async fn append(&self, mailbox: MailboxId, messages: Vec<NewMessage>) -> Result<Vec<Uid>>;

    // ---- summaries (made by the indexer, read by SEARCH and SORT)
    /// Summarises up to `limit` blobs that have no summary yet (those of `mailbox`, or the
    /// newest of any) with `summarize`, on a blocking thread, and stores the results. Returns
    /// how many were summarised: 0 when nothing is left. `summarize` gets each whole message.
    async fn summarize_pending(
        &self,
        mailbox: Option<MailboxId>,
        limit: usize,
        summarize: for<'a> fn(&'a [u8]) -> SummaryData,
    ) -> Result<usize>;
    /// The stored FETCH items ([`SummaryData::fetch`]) of each blob, in the order asked
    /// (`None`: not summarised yet).
    async fn fetch_parts(&self, blobs: Vec<BlobId>) -> Result<Vec<Option<Vec<u8>>>>;
    /// The summary keys of every message of a mailbox, in UID order (`None`: not summarised).
    async fn summary_keys(&self, mailbox: MailboxId) -> Result<Vec<(Uid, Option<Vec<u8>>)>>;
    /// Runs `test` on the summary of every message of a mailbox, with its body text when
    /// `bodies` (then split over the CPU cores: the rows are large); returns the non-zero
    /// results in UID order. Messages not summarised yet are skipped.
    async fn scan_summaries(
        &self,
        mailbox: MailboxId,
        bodies: bool,
        test: ScanTest,
    ) -> Result<Vec<(Uid, u64)>>;

    // ---- delivery and queue
    /// Durably stores one accepted message: a copy into the INBOX of each local account and,
    /// if there are remote recipients, one queue entry. All or nothing.
    async fn deliver(&self, delivery: Delivery) -> Result<DeliveryReceipt>;
    /// The outbound queue, oldest first.
    async fn list_queue(&self) -> Result<Vec<QueueEntry>>;
    /// One queue entry with all its recipients.
    async fn queue_entry(&self, id: i64) -> Result<Option<QueueEntry>>;
    /// Claims up to `limit` entries due at `now` (earliest first) for a delivery attempt: each
    /// is leased, its next attempt moved to `lease_until`, so a runner that dies mid-delivery
    /// leaves it to be tried again later (at worst a duplicate), never lost.
    async fn claim_queue(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>>;
    /// Makes every leased entry due at `now`: a queue runner starting after a crash (one
    /// runner serves a store at a time). Returns how many there were.
    async fn release_queue_leases(&self, now: i64) -> Result<u64>;
    /// Records the results of an attempt and ends the lease. When no recipient is pending any
    /// more the entry is removed; a notice (bounce) is stored in the same transaction, so an
    /// entry never disappears without either the peer's "250" or a durable bounce.
    async fn update_queue(&self, update: QueueUpdate) -> Result<QueueOutcome>;
    /// Makes one entry, or every entry not leased, due at `now`. Returns how many changed.
    async fn retry_queue(&self, id: Option<i64>, now: i64) -> Result<u64>;
    /// Removes an entry without any notice; `false` if it did not exist.
    async fn delete_queue(&self, id: i64) -> Result<bool>;
    /// The earliest next attempt of any entry (leased ones included), unix seconds.
    async fn next_queue_due(&self) -> Result<Option<i64>>;

    // ---- misc
    /// A counter of deliveries and appends this process has started (monotonic): background
    /// work (the indexer) compares two readings to yield to incoming mail.
    fn store_activity(&self) -> u64;
    /// Counts, for `postern stats` and benchmarks.
    async fn stats(&self) -> Result<Stats>;
}

/// Options of the embedded backend.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Bytes of zeros the WAL gets at open, once it has been checkpointed empty (0: none).
    /// Commits then overwrite allocated blocks instead of growing the file, so their
    /// fdatasync need not also commit a file-size change to the file system's journal:
    /// measured here, 4 KiB deliveries from one client went 14–46% faster. Skipped when
    /// another process keeps the WAL in use.
    pub wal_preallocate: u64,
    /// Bytes of zeros kept written ahead of the blob log's append point (0: none), so that a
    /// large body's fdatasync overwrites allocated blocks instead of growing the file.
    pub log_zeros_ahead: u64,
}

/// A cheap-to-clone handle on the configured backend.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Opens (creating if needed) the embedded store in `data_dir` (file `postern.db`).
    pub fn open_embedded(data_dir: &Path) -> Result<Store> {
        Self::open_embedded_with(data_dir, &EmbeddedOptions::default())
    }

    /// [`Store::open_embedded`] with options (the server's: the admin CLI uses the defaults).
    pub fn open_embedded_with(data_dir: &Path, options: &EmbeddedOptions) -> Result<Store> {
        Ok(Store(Arc::new(embedded::Embedded::open_with(
            data_dir, options,
        )?)))
    }

    /// Wraps any backend (used by tests and future backends).
    pub fn from_backend(backend: Arc<dyn Backend>) -> Store {
        Store(backend)
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// Lower-cases an address or domain the way the store keys them. Local parts are treated
/// case-insensitively (RFC 5321 allows either; every mainstream server folds them).
pub fn normalize_address(address: &str) -> String {
    address.trim().to_lowercase()
}

/// `user@domain` for `user+tag@domain` (subaddressing); `None` when there is no tag.
pub fn untagged(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    let (base, _tag) = local.split_once('+')?;
    Some(format!("{base}@{domain}"))
}

/// A remote address as it goes on the wire: its local part exactly as given (RFC 5321 2.4:
/// only the host that owns it may fold its case), its domain lower-cased.
pub fn remote_address(address: &str) -> String {
    let a = address.trim();
    match a.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => a.to_string(),
    }
}

/// The domain of an address: after the last `@` (a quoted local part may hold one); empty
/// when there is none.
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}
