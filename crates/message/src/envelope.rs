//! The IMAP ENVELOPE view of a message header (RFC 9051 7.5.2): raw values, parsed addresses.

use crate::address::{Address, parse_address_list};
use crate::header;

/// The ENVELOPE of a message. Text fields are raw unfolded header values (trimmed, not
/// decoded); `None` when the header is absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// `Date`.
    pub date: Option<Vec<u8>>,
    /// `Subject`.
    pub subject: Option<Vec<u8>>,
    /// `From`.
    pub from: Vec<Address>,
    /// `Sender` (defaults to `from`).
    pub sender: Vec<Address>,
    /// `Reply-To` (defaults to `from`).
    pub reply_to: Vec<Address>,
    /// `To`.
    pub to: Vec<Address>,
    /// `Cc`.
    pub cc: Vec<Address>,
    /// `Bcc`.
    pub bcc: Vec<Address>,
    /// `In-Reply-To`.
    pub in_reply_to: Option<Vec<u8>>,
    /// `Message-ID`.
    pub message_id: Option<Vec<u8>>,
}

/// Builds the ENVELOPE of a raw message (only its header is looked at).
pub fn envelope(raw: &[u8]) -> Envelope {
    let (h, _) = header::split(raw);
    from_header(h)
}

/// Builds an ENVELOPE from a header block.
pub(crate) fn from_header(h: &[u8]) -> Envelope {
    let text = |name: &str| header::first(h, name).map(|f| f.unfolded());
    let addrs = |name: &str| {
        header::first(h, name)
            .map(|f| parse_address_list(f.value))
            .unwrap_or_default()
    };
    let from = addrs("from");
    let mut sender = addrs("sender");
    if sender.is_empty() {
        sender = from.clone();
    }
    let mut reply_to = addrs("reply-to");
    if reply_to.is_empty() {
        reply_to = from.clone();
    }
    Envelope {
        date: text("date"),
        subject: text("subject"),
        sender,
        reply_to,
        from,
        to: addrs("to"),
        cc: addrs("cc"),
        bcc: addrs("bcc"),
        in_reply_to: text("in-reply-to"),
        message_id: text("message-id"),
    }
}
