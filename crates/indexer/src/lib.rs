//! Message summaries: what SEARCH and SORT need of a message (sort/thread keys, the decoded,
//! case-folded header fields and body text), extracted once per stored blob so that a SEARCH
//! or a SORT over 100,000 messages reads rows instead of parsing every message; and the FETCH
//! items a message list asks for (ENVELOPE, BODYSTRUCTURE), rendered once.
//!
//! The store keeps summaries as opaque bytes ([`store::SummaryData`]); this crate alone knows
//! their encoding ([`summarize`] writes it; [`decode_keys`], [`header_fields`],
//! [`sent_date`], [`body_text`] and [`fetch_parts`] read it). A background task
//! ([`run`]) summarises new blobs shortly after they arrive; [`ensure`] summarises whatever a
//! mailbox still lacks before a SEARCH or SORT relies on the summaries.

use std::future::Future;
use std::time::Duration;

use store::{MailboxId, Store, StoreError, SummaryData};

/// Blobs summarised per store round trip.
const BATCH: usize = 256;
/// How often the background task looks for new blobs when it has nothing to do.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// While mail is arriving: this many blobs per pause.
const BUSY_BATCH: usize = 16;
const BUSY_PAUSE: Duration = Duration::from_secs(1);

/// Field separator of the encoding. Decoded text never contains NUL ([`clean`] removes it).
const SEP: u8 = 0;

/// Computes the stored summary of a raw message.
pub fn summarize(raw: &[u8]) -> SummaryData {
    let keys = message::sort_keys(raw);
    let text = message::search_text(raw);
    let headers = text
        .headers
        .into_iter()
        .map(|(name, value)| (name, message::fold(&value)))
        .collect::<Vec<_>>();
    SummaryData {
        keys: encode_keys(&keys),
        headers: encode_fields(headers.iter().flat_map(|(n, v)| [n.as_str(), v.as_str()])),
        fetch: render_fetch(raw),
        body: message::fold(&text.body).into_bytes(),
    }
}

/// A message's FETCH items as IMAP sends them (after the item name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchParts<'a> {
    pub envelope: &'a [u8],
    /// BODYSTRUCTURE, with the extension data.
    pub body_structure: &'a [u8],
    /// BODY: the structure without extension data.
    pub body: &'a [u8],
}

/// Renders the FETCH items of a raw message in the stored encoding: each item as a 4-byte
/// little-endian length and its bytes (rendered IMAP may hold any byte).
pub fn render_fetch(raw: &[u8]) -> Vec<u8> {
    let structure = message::body_structure(raw);
    let mut items: [Vec<u8>; 3] = Default::default();
    proto_imap::envelope(&mut items[0], &message::envelope(raw));
    proto_imap::body_structure(&mut items[1], &structure, true);
    proto_imap::body_structure(&mut items[2], &structure, false);
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() + 4).sum());
    for item in &items {
        out.extend_from_slice(&(item.len() as u32).to_le_bytes());
        out.extend_from_slice(item);
    }
    out
}

/// Reads stored FETCH items; `None` for damaged bytes (the caller renders them afresh).
pub fn fetch_parts(bytes: &[u8]) -> Option<FetchParts<'_>> {
    let mut rest = bytes;
    let mut next = || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let item = tail.get(..len)?;
        rest = &tail[len..];
        Some(item)
    };
    let parts = FetchParts {
        envelope: next()?,
        body_structure: next()?,
        body: next()?,
    };
    rest.is_empty().then_some(parts)
}

/// The header fields of stored summary bytes as (name, folded value), without allocating: the
/// form a SEARCH scan over 100,000 summaries wants.
pub fn header_fields(bytes: &[u8]) -> impl Iterator<Item = (&str, &str)> + '_ {
    let mut f = fields(bytes);
    std::iter::from_fn(move || Some((f.next()?, f.next()?)))
}

/// The folded body text of stored body bytes (empty for a damaged row).
pub fn body_text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// The sent date (the `Date` header, Unix seconds) of stored summary keys.
pub fn sent_date(keys: &[u8]) -> Option<i64> {
    fields(keys).next()?.parse().ok()
}

/// Which sort keys [`decode_keys`] fills (the date always): a SORT over 100,000 messages
/// should not allocate the keys it does not compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyFields {
    pub subject: bool,
    pub from: bool,
    pub to: bool,
    pub cc: bool,
    pub display_from: bool,
    pub display_to: bool,
    /// Message-ID, References and whether the subject was a reply (THREAD REFERENCES).
    pub threading: bool,
}

impl KeyFields {
    pub const ALL: KeyFields = KeyFields {
        subject: true,
        from: true,
        to: true,
        cc: true,
        display_from: true,
        display_to: true,
        threading: true,
    };
}

/// The sort and thread keys (what SORT and THREAD read), those of `want` and the date; the
/// others are left empty. Malformed bytes give default values, never a panic.
pub fn decode_keys(bytes: &[u8], want: KeyFields) -> message::SortKeys {
    let mut f = fields(bytes);
    let mut next = |wanted: bool| {
        let field = f.next().unwrap_or_default();
        if wanted {
            field.to_string()
        } else {
            String::new()
        }
    };
    let date = next(true).parse().ok();
    let subject = next(want.subject);
    let from = next(want.from);
    let to = next(want.to);
    let cc = next(want.cc);
    let display_from = next(want.display_from);
    let display_to = next(want.display_to);
    let message_id = Some(next(want.threading)).filter(|s| !s.is_empty());
    let references = next(want.threading)
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let subject_is_reply = next(want.threading) == "1";
    message::SortKeys {
        date,
        subject,
        from,
        to,
        cc,
        display_from,
        display_to,
        message_id,
        references,
        subject_is_reply,
    }
}

fn encode_keys(k: &message::SortKeys) -> Vec<u8> {
    let date = k.date.map(|d| d.to_string()).unwrap_or_default();
    let refs = k.references.join(" ");
    encode_fields([
        date.as_str(),
        &k.subject,
        &k.from,
        &k.to,
        &k.cc,
        &k.display_from,
        &k.display_to,
        k.message_id.as_deref().unwrap_or(""),
        &refs,
        if k.subject_is_reply { "1" } else { "0" },
    ])
}

fn encode_fields<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.extend(f.bytes().map(clean));
    }
    out
}

/// NUL would end a field early; a NUL in a decoded header (from `=00` in an encoded word)
/// carries no searchable meaning, so it becomes a space.
fn clean(b: u8) -> u8 {
    if b == SEP { b' ' } else { b }
}

/// The fields of encoded bytes (none for empty bytes). They were written from `String`s, so
/// they are UTF-8; a field that is not (a damaged row) reads as empty.
fn fields(bytes: &[u8]) -> impl Iterator<Item = &str> + '_ {
    bytes
        .split(|b| *b == SEP)
        .filter(move |_| !bytes.is_empty())
        .map(|f| std::str::from_utf8(f).unwrap_or(""))
}

/// Summarises every message of `mailbox` that has no summary yet; returns how many.
pub async fn ensure(store: &Store, mailbox: MailboxId) -> Result<usize, StoreError> {
    let mut done = 0;
    loop {
        match store
            .summarize_pending(Some(mailbox), BATCH, summarize)
            .await?
        {
            0 => return Ok(done),
            n => done += n,
        }
    }
}

/// Summarises new blobs in the background until `stop` completes: in batches while there is a
/// backlog (newest first), polling every half second when there is none. While mail is
/// arriving it yields: a small batch a second, so a burst of deliveries is not slowed by
/// re-reading and storing the text of what just arrived; the backlog is summarised once the
/// burst is over, or by [`ensure`] when a SEARCH needs it sooner.
pub async fn run(store: Store, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    // No reading yet counts as busy: a small batch first, then two readings tell.
    let mut seen = None;
    loop {
        let now = store.store_activity();
        let busy = seen != Some(now);
        seen = Some(now);
        let limit = if busy { BUSY_BATCH } else { BATCH };
        let wait = match store.summarize_pending(None, limit, summarize).await {
            Ok(0) => IDLE_POLL,
            Ok(_) if busy => BUSY_PAUSE,
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::warn!("summarising messages: {e}");
                IDLE_POLL
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests;
