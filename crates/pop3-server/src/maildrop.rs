//! The maildrop: a snapshot of the INBOX taken at login, and the TRANSACTION and UPDATE
//! commands over it.
//!
//! Invariants:
//! * Message numbers, UIDs and sizes are those of the login snapshot for the whole session;
//!   mail arriving later is seen by the next session (RFC 1939 8 leaves this to the server).
//! * Sizes are the messages' canonical sizes (every line ended by CRLF, `store::canonical_size`),
//!   which is exactly what RETR sends before stuffing (`proto_pop3::message_size`).
//! * DELE only marks. QUIT removes exactly the marked UIDs in one durable store call and
//!   answers "+OK" after it returned; messages another session expunged meanwhile are skipped.

use auth::Identity;
use proto_pop3::response::{end, listing_line, unique_id};
use proto_pop3::{Code, MessageWriter};
use store::{BlobId, MailboxId, Store, StoreError, Uid};

use crate::Pop3Error;
use crate::lock::LockGuard;
use crate::session::{End, FLUSH_AT, Flow, Session};

/// One message of the snapshot.
#[derive(Debug, Clone, Copy)]
struct Entry {
    uid: Uid,
    blob: BlobId,
    size: u64,
    deleted: bool,
}

/// A logged-in session's view of its INBOX.
pub(crate) struct Maildrop {
    pub(crate) identity: Identity,
    mailbox: MailboxId,
    uid_validity: u32,
    messages: Vec<Entry>,
    /// Held for the session's life; dropped (released) however the session ends.
    _lock: LockGuard,
}

impl Maildrop {
    /// Takes the snapshot of `identity`'s INBOX (one read transaction in the store).
    pub(crate) async fn open(
        store: &Store,
        identity: Identity,
        lock: LockGuard,
    ) -> Result<Maildrop, Pop3Error> {
        let inbox = store
            .mailbox_by_name(identity.account, "INBOX")
            .await?
            .ok_or(Pop3Error::NoInbox)?;
        let listing = store.message_listing(inbox.id).await?;
        Ok(Maildrop {
            identity,
            mailbox: inbox.id,
            uid_validity: listing.mailbox.uid_validity,
            messages: listing
                .messages
                .iter()
                .map(|m| Entry {
                    uid: m.uid,
                    blob: m.blob,
                    size: m.canonical_size,
                    deleted: false,
                })
                .collect(),
            _lock: lock,
        })
    }

    /// Messages not marked deleted and their total size.
    pub(crate) fn stat(&self) -> (usize, u64) {
        self.messages
            .iter()
            .filter(|m| !m.deleted)
            .fold((0, 0), |(n, s), m| (n + 1, s + m.size))
    }

    /// Message `n` (1-based) unless it does not exist or is marked deleted.
    fn get(&self, n: u32) -> Result<Entry, String> {
        match (n as usize)
            .checked_sub(1)
            .and_then(|i| self.messages.get(i))
        {
            None => Err(format!("No such message {n}")),
            Some(m) if m.deleted => Err(format!("Message {n} already deleted")),
            Some(m) => Ok(*m),
        }
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.deleted)
            .map(|(i, m)| (i + 1, m))
    }
}

impl Session {
    /// The maildrop; only called in the TRANSACTION state ([`Session::allowed`]).
    fn drop_ref(&mut self) -> Result<&mut Maildrop, End> {
        self.maildrop().ok_or(End::Closed)
    }

    pub(crate) fn handle_stat(&mut self) -> Flow {
        let (n, size) = self.drop_ref()?.stat();
        proto_pop3::ok(&mut self.out, &format!("{n} {size}"));
        Ok(())
    }

    pub(crate) fn handle_list(&mut self, n: Option<u32>) -> Flow {
        let Session { state, out, .. } = self;
        let crate::session::State::Transaction(m) = state else {
            return Err(End::Closed);
        };
        match n {
            Some(n) => match m.get(n) {
                Ok(e) => {
                    proto_pop3::ok(out, &format!("{n} {}", e.size));
                    Ok(())
                }
                Err(why) => self.error(None, &why),
            },
            None => {
                let (count, size) = m.stat();
                proto_pop3::ok(out, &format!("{count} messages ({size} octets)"));
                for (i, e) in m.live() {
                    listing_line(out, i, e.size);
                }
                end(out);
                Ok(())
            }
        }
    }

    pub(crate) fn handle_uidl(&mut self, n: Option<u32>) -> Flow {
        let Session { state, out, .. } = self;
        let crate::session::State::Transaction(m) = state else {
            return Err(End::Closed);
        };
        match n {
            Some(n) => match m.get(n) {
                Ok(e) => {
                    let id = unique_id(e.uid, m.uid_validity);
                    proto_pop3::ok(out, &format!("{n} {id}"));
                    Ok(())
                }
                Err(why) => self.error(None, &why),
            },
            None => {
                proto_pop3::ok(out, "Unique-id listing follows");
                for (i, e) in m.live() {
                    listing_line(out, i, unique_id(e.uid, m.uid_validity));
                }
                end(out);
                Ok(())
            }
        }
    }

    /// RETR (`top` = None) and TOP.
    pub(crate) async fn handle_retr(&mut self, n: u32, top: Option<u32>) -> Flow {
        let entry = match self.drop_ref()?.get(n) {
            Ok(e) => e,
            Err(why) => return self.error(None, &why),
        };
        let data = match self.srv.store.read_blob(entry.blob).await {
            Ok(d) => d,
            // Expunged by another session and its bytes collected since the snapshot.
            Err(StoreError::NotFound(_)) => {
                return self.error(None, &format!("Message {n} is no longer available"));
            }
            Err(e) => {
                tracing::error!("POP3 read of message {n} failed: {e}");
                return self.error(Some(Code::SysTemp), "Cannot read the message; try again");
            }
        };
        let mut writer = match top {
            None => {
                let size = proto_pop3::message_size(&data);
                if size != entry.size {
                    tracing::warn!(
                        uid = entry.uid,
                        size,
                        listed = entry.size,
                        "POP3 size mismatch"
                    );
                }
                proto_pop3::ok(&mut self.out, &format!("{size} octets"));
                MessageWriter::retr(&data)
            }
            Some(lines) => {
                proto_pop3::ok(&mut self.out, "Top of message follows");
                MessageWriter::top(&data, lines)
            }
        };
        while !writer.write(&mut self.out, FLUSH_AT) {
            self.flush().await?;
        }
        Ok(())
    }

    pub(crate) fn handle_dele(&mut self, n: u32) -> Flow {
        let m = self.drop_ref()?;
        match m.get(n) {
            Ok(_) => {
                m.messages[n as usize - 1].deleted = true;
                proto_pop3::ok(&mut self.out, &format!("Message {n} deleted"));
                Ok(())
            }
            Err(why) => self.error(None, &why),
        }
    }

    pub(crate) fn handle_rset(&mut self) -> Flow {
        let m = self.drop_ref()?;
        for e in &mut m.messages {
            e.deleted = false;
        }
        let (count, size) = m.stat();
        proto_pop3::ok(
            &mut self.out,
            &format!("Maildrop has {count} messages ({size} octets)"),
        );
        Ok(())
    }

    /// QUIT: in the TRANSACTION state this is the UPDATE state (RFC 1939 6).
    pub(crate) async fn handle_quit(&mut self) -> Flow {
        let host = self.srv.settings.hostname.clone();
        let Some(m) = self.maildrop() else {
            proto_pop3::ok(&mut self.out, &format!("{host} Postern POP3 signing off"));
            return Err(End::Closed);
        };
        let uids: Vec<Uid> = m
            .messages
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.uid)
            .collect();
        if uids.is_empty() {
            proto_pop3::ok(&mut self.out, &format!("{host} Postern POP3 signing off"));
            self.release();
            return Err(End::Closed);
        }
        let (mailbox, count) = (m.mailbox, uids.len());
        match self.srv.store.expunge_uids(mailbox, uids).await {
            Ok(removed) => {
                tracing::info!(
                    peer = %self.peer,
                    marked = count,
                    removed = removed.len(),
                    "POP3 deletions committed"
                );
                proto_pop3::ok(
                    &mut self.out,
                    &format!("{host} Postern POP3 signing off ({count} messages deleted)"),
                );
            }
            Err(e) => {
                tracing::error!("POP3 deletions at QUIT failed: {e}");
                // RFC 1939 6: -ERR when some deleted messages were not removed.
                proto_pop3::err(
                    &mut self.out,
                    Some(Code::SysTemp),
                    "Deleted messages were not removed; try again",
                );
            }
        }
        self.release();
        Err(End::Closed)
    }

    /// Leaves the TRANSACTION state, releasing the maildrop lock before the final reply is
    /// sent: a client that logs in again right after QUIT must not find it still locked.
    fn release(&mut self) {
        self.state = crate::session::State::Authorization { user: None };
    }
}

#[cfg(test)]
mod tests {
    /// The store's canonical size (what LIST reports) and the size of what RETR sends agree.
    #[test]
    fn listed_size_is_the_sent_size() {
        let samples: &[&[u8]] = &[
            b"",
            b"A: 1\r\n\r\nbody\r\n",
            b"A: 1\n\nbody\n",
            b"no end",
            b"x\r",
            b"a\rb\r\n\r\r\n.\n..\r\n",
            b"\n\n\r\n",
        ];
        for s in samples {
            assert_eq!(
                store::canonical_size(s),
                proto_pop3::message_size(s),
                "{s:?}"
            );
        }
    }
}
