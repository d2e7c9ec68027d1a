//! Records the store takes in and hands out.

/// Row id of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

/// Row id of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(pub i64);

/// Row id of a stored message body (shared by every copy of the same bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub i64);

/// IMAP unique identifier of a message within one mailbox (RFC 9051 2.3.1.1).
pub type Uid = u32;

/// Mailboxes every new account gets, with their RFC 6154 special-use attribute.
pub const DEFAULT_MAILBOXES: &[(&str, Option<&str>)] = &[
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Row id.
    pub id: AccountId,
    /// Lower-case `local@domain`.
    pub address: String,
    /// Creation time, unix seconds.
    pub created: i64,
}

/// What authentication needs about an account.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Row id.
    pub id: AccountId,
    /// Lower-case address.
    pub address: String,
    /// PHC string (argon2id).
    pub password_hash: String,
}

/// One alias row: mail for `source` goes to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// `local@domain`, or `@domain` for a catch-all.
    pub source: String,
    /// Any address, local or remote.
    pub target: String,
}

/// What one exact address is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressLookup {
    /// The account with this address, if any.
    pub account: Option<AccountId>,
    /// Targets of aliases whose source is this address.
    pub alias_targets: Vec<String>,
}

/// A mailbox of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Row id.
    pub id: MailboxId,
    /// Owner.
    pub account: AccountId,
    /// Full name, hierarchy delimiter "/".
    pub name: String,
    /// RFC 6154 attribute such as `\Sent`.
    pub special_use: Option<String>,
    /// UIDVALIDITY; changes only if the mailbox is re-created.
    pub uid_validity: u32,
    /// The UID the next message will get.
    pub uid_next: Uid,
    /// CONDSTORE HIGHESTMODSEQ.
    pub highest_modseq: u64,
    /// Number of messages.
    pub messages: u32,
    /// Subscribed (IMAP LSUB).
    pub subscribed: bool,
}

/// IMAP system flags as stored (bit set) plus keywords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// Bit set of [`Flags::SEEN`] etc.
    pub system: u32,
    /// Keywords, as given (IMAP keywords are case-insensitive atoms).
    pub keywords: Vec<String>,
}

impl Flags {
    /// `\Seen`
    pub const SEEN: u32 = 1;
    /// `\Answered`
    pub const ANSWERED: u32 = 2;
    /// `\Flagged`
    pub const FLAGGED: u32 = 4;
    /// `\Deleted`
    pub const DELETED: u32 = 8;
    /// `\Draft`
    pub const DRAFT: u32 = 16;

    const NAMES: [(u32, &'static str); 5] = [
        (Self::SEEN, "\\Seen"),
        (Self::ANSWERED, "\\Answered"),
        (Self::FLAGGED, "\\Flagged"),
        (Self::DELETED, "\\Deleted"),
        (Self::DRAFT, "\\Draft"),
    ];

    /// Builds flags from IMAP flag names; system flags are matched case-insensitively,
    /// anything else not starting with a backslash is a keyword, other `\X` are dropped.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Flags {
        let mut f = Flags::default();
        for n in names {
            let n = n.as_ref();
            if let Some((bit, _)) = Self::NAMES.iter().find(|(_, s)| s.eq_ignore_ascii_case(n)) {
                f.system |= bit;
            } else if !n.starts_with('\\')
                && !n.is_empty()
                // Keywords are case-insensitive (RFC 9051 2.3.2): the first spelling stays.
                && !f.keywords.iter().any(|k| k.eq_ignore_ascii_case(n))
            {
                f.keywords.push(n.to_string());
            }
        }
        f
    }

    /// All flag names, system flags first.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = Self::NAMES
            .iter()
            .filter(|(bit, _)| self.system & bit != 0)
            .map(|(_, s)| s.to_string())
            .collect();
        v.extend(self.keywords.iter().cloned());
        v
    }

    /// Whether `\Seen` is set.
    pub fn seen(&self) -> bool {
        self.system & Self::SEEN != 0
    }
}

/// Metadata of one message in one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// UID within the mailbox.
    pub uid: Uid,
    /// The stored bytes.
    pub blob: BlobId,
    /// RFC822.SIZE: exact octets of the stored message.
    pub size: u64,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
    /// Flags and keywords.
    pub flags: Flags,
    /// CONDSTORE MODSEQ of the last change.
    pub modseq: u64,
}

/// A message to append (import, IMAP APPEND).
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Raw bytes, CRLF line endings.
    pub data: Vec<u8>,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
    /// Initial flags.
    pub flags: Flags,
}

/// One accepted message to store durably.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Envelope sender; `None` for the null reverse-path `<>`.
    pub sender: Option<String>,
    /// Local accounts to deliver into (INBOX), deduplicated by the caller.
    pub local: Vec<AccountId>,
    /// Bytes for the local copies (with Return-Path).
    pub local_data: Vec<u8>,
    /// Remote recipients to queue.
    pub remote: Vec<String>,
    /// Bytes for the queued copy (without Return-Path).
    pub remote_data: Vec<u8>,
    /// Reception time, unix seconds (INTERNALDATE of the local copies).
    pub received: i64,
}

/// What [`crate::Backend::deliver`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// UID given in each local INBOX, in the order of [`Delivery::local`].
    pub local_uids: Vec<Uid>,
    /// The queue entry created for remote recipients.
    pub queue_id: Option<i64>,
}

/// State of one recipient of a queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientStatus {
    /// Waiting for (another) delivery attempt.
    Pending,
    /// The peer accepted it.
    Delivered,
    /// Permanently failed (bounced).
    Failed,
}

impl RecipientStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Failed => "failed",
        }
    }
    /// Parses the stored spelling (unknown values read as pending).
    pub fn parse(s: &str) -> RecipientStatus {
        match s {
            "delivered" => RecipientStatus::Delivered,
            "failed" => RecipientStatus::Failed,
            _ => RecipientStatus::Pending,
        }
    }
}

/// One recipient of a queue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecipient {
    /// Address.
    pub address: String,
    /// Status.
    pub status: RecipientStatus,
    /// Last error text from a delivery attempt (the peer's reply, or what went wrong).
    pub last_error: Option<String>,
    /// RFC 3463 status code of the last result (e.g. `4.4.1`, `5.1.1`, `2.0.0`).
    pub status_code: Option<String>,
    /// The host that gave the last result, if one answered.
    pub remote_mta: Option<String>,
}

/// A message waiting in the outbound queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Queue id.
    pub id: i64,
    /// Envelope sender, `None` for `<>`.
    pub sender: Option<String>,
    /// Recipients with their status.
    pub recipients: Vec<QueueRecipient>,
    /// The message bytes.
    pub blob: BlobId,
    /// Size in octets.
    pub size: u64,
    /// When it was queued, unix seconds.
    pub created: i64,
    /// Earliest next attempt, unix seconds (while claimed: when the claim lapses).
    pub next_attempt: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the last attempt ended, unix seconds.
    pub last_attempt: Option<i64>,
    /// Claimed by a queue runner ([`crate::Backend::claim_queue`]) and not updated since.
    pub leased: bool,
    /// A delay warning has been sent to the sender.
    pub warned: bool,
}

impl QueueEntry {
    /// The recipients still waiting for delivery.
    pub fn pending(&self) -> impl Iterator<Item = &QueueRecipient> {
        self.recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Pending)
    }
}

/// The result of one delivery attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    /// The recipient, as queued.
    pub address: String,
    /// Its new status: `Pending` for a temporary failure.
    pub status: RecipientStatus,
    /// What happened (the peer's reply, or the local reason).
    pub error: Option<String>,
    /// RFC 3463 status code.
    pub status_code: Option<String>,
    /// The host that answered, if any.
    pub remote_mta: Option<String>,
}

/// What a queue runner records after an attempt ([`crate::Backend::update_queue`]).
#[derive(Debug, Clone)]
pub struct QueueUpdate {
    /// The entry.
    pub id: i64,
    /// Per-recipient results; recipients not listed keep their state.
    pub results: Vec<RecipientResult>,
    /// When to try the recipients still pending again, unix seconds.
    pub next_attempt: i64,
    /// Count this as a delivery attempt ending at this time (unix seconds).
    pub attempted_at: Option<i64>,
    /// A delay warning goes out with this update ([`QueueEntry::warned`] is set).
    pub warned: bool,
    /// A bounce or delay warning (DSN) to store in the same transaction: local copies and/or a
    /// new queue entry. Dropped if the entry no longer exists.
    pub notice: Option<Delivery>,
}

/// What [`crate::Backend::update_queue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOutcome {
    /// Every recipient is final: the entry is gone.
    Removed,
    /// Some recipients are still pending; the entry waits for its next attempt.
    Pending,
    /// The entry did not exist (deleted meanwhile); nothing was stored.
    Gone,
}

/// Counts over the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Hosted domains.
    pub domains: u64,
    /// Accounts.
    pub accounts: u64,
    /// Aliases.
    pub aliases: u64,
    /// Messages in all mailboxes.
    pub messages: u64,
    /// Queue entries.
    pub queued: u64,
    /// Message bodies the indexer has not summarised yet (SEARCH and SORT summarise their
    /// mailbox's on demand).
    pub unsummarized: u64,
}

/// How STORE changes flags (RFC 9051 6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    /// `FLAGS`: replace.
    Replace,
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
}

/// Outcome of a flag change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagUpdate {
    /// Messages whose flags changed, with their new flags and MODSEQ.
    pub updated: Vec<MessageMeta>,
    /// Messages whose flags were already as asked (no new MODSEQ).
    pub unchanged: Vec<MessageMeta>,
    /// CONDSTORE: UIDs not changed because their MODSEQ was above UNCHANGEDSINCE.
    pub modified: Vec<Uid>,
}

/// What selecting a mailbox needs, from one read transaction: its state, its UIDs, and what
/// SELECT reports about the flags. Small on purpose: thousands of sessions select at once.
#[derive(Debug, Clone)]
pub struct MailboxSnapshot {
    /// The mailbox as of the snapshot.
    pub mailbox: Mailbox,
    /// Every message's UID, ascending.
    pub uids: Vec<Uid>,
    /// The lowest UID without `\Seen`.
    pub first_unseen: Option<Uid>,
    /// The keywords in use, sorted, each once.
    pub keywords: Vec<String>,
}

/// What changed in a mailbox after a MODSEQ.
#[derive(Debug, Clone)]
pub struct MailboxChanges {
    /// The mailbox now.
    pub mailbox: Mailbox,
    /// Messages added or whose flags changed (MODSEQ above the given one), in UID order.
    pub changed: Vec<MessageMeta>,
    /// UIDs expunged after the given MODSEQ, ascending.
    pub expunged: Vec<Uid>,
}

/// Outcome of COPY/MOVE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResult {
    /// UIDVALIDITY of the destination (for COPYUID).
    pub uid_validity: u32,
    /// (source UID, destination UID) pairs, in source UID order.
    pub pairs: Vec<(Uid, Uid)>,
}

/// One message of a [`MessageListing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedMessage {
    /// UID within the mailbox.
    pub uid: Uid,
    /// The stored bytes.
    pub blob: BlobId,
    /// Octets as stored (IMAP RFC822.SIZE).
    pub size: u64,
    /// Octets in canonical form, every line ended by CRLF ([`canonical_size`]).
    pub canonical_size: u64,
}

/// A mailbox and every message in it with its sizes, from one read transaction: what a
/// download-and-delete client (POP3) fixes at login.
#[derive(Debug, Clone)]
pub struct MessageListing {
    /// The mailbox as of the listing.
    pub mailbox: Mailbox,
    /// Its messages in UID order.
    pub messages: Vec<ListedMessage>,
}

/// Size of `data` in canonical form: each bare LF becomes CRLF (an existing CRLF stays as it
/// is, a lone CR is ordinary line content) and a last line without a line end gets CRLF.
/// Messages arriving by SMTP are canonical already; IMAP APPEND and imports may not be.
pub fn canonical_size(data: &[u8]) -> u64 {
    let mut size = data.len() as u64;
    for i in memchr::memchr_iter(b'\n', data) {
        if i == 0 || data[i - 1] != b'\r' {
            size += 1;
        }
    }
    if data.last().is_some_and(|b| *b != b'\n') {
        size += 2;
    }
    size
}

/// Aggregates for STATUS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    /// Messages.
    pub messages: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Sum of message sizes (STATUS=SIZE).
    pub size: u64,
    /// Messages with `\Deleted`.
    pub deleted: u32,
}

/// The stored summary of a blob (see the `indexer` crate, which alone knows the encoding):
/// sort/thread keys and decoded header fields, so SEARCH and SORT need not re-parse messages,
/// and pre-rendered FETCH items, so a message list need not either.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SummaryData {
    /// Encoded sort and thread keys (small).
    pub keys: Vec<u8>,
    /// Encoded header fields.
    pub headers: Vec<u8>,
    /// Encoded FETCH items.
    pub fetch: Vec<u8>,
    /// Encoded body text (SEARCH BODY and TEXT).
    pub body: Vec<u8>,
}

/// What a scan's test sees of one message: the summary's encoded keys and header fields, and
/// with [`Backend::scan_summaries`](crate::Backend::scan_summaries)' `bodies` the encoded body
/// text (empty otherwise). All borrowed from the store, never copied.
#[derive(Debug, Clone, Copy)]
pub struct ScanRow<'a> {
    /// [`SummaryData::keys`].
    pub keys: &'a [u8],
    /// [`SummaryData::headers`].
    pub headers: &'a [u8],
    /// [`SummaryData::body`], or empty.
    pub body: &'a [u8],
}

/// A per-message test run by the store's scans on blocking threads (several at once when
/// bodies are read): returns one bit per search key.
pub type ScanTest = Box<dyn Fn(ScanRow<'_>) -> u64 + Send + Sync>;
