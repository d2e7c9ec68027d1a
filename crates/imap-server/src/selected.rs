//! The selected mailbox as one session sees it: the message list in sequence order, the MODSEQ
//! it is synced to, and the resync that turns store changes into untagged responses without
//! breaking sequence-number rules.

use std::num::NonZeroU32;

use imap_codec::imap_types::sequence::SequenceSet;
use store::{Flags, MailboxId, MessageMeta, Store, StoreError, Uid};
use tokio::sync::watch;

/// A selected mailbox.
pub(crate) struct Selected {
    pub(crate) id: MailboxId,
    pub(crate) name: String,
    pub(crate) read_only: bool,
    pub(crate) uid_validity: u32,
    pub(crate) uid_next: Uid,
    /// Messages by sequence number (index + 1), ascending UID.
    pub(crate) msgs: Vec<MessageMeta>,
    /// The MODSEQ this view reflects.
    pub(crate) modseq: u64,
    /// UIDs expunged in the store but not yet reported (EXPUNGE is not allowed during
    /// FETCH, STORE and SEARCH).
    pending_expunge: Vec<Uid>,
    pub(crate) watch: watch::Receiver<u64>,
}

/// Formats flags as an IMAP flag list.
pub(crate) fn flag_list(f: &Flags) -> String {
    format!("({})", f.names().join(" "))
}

impl Selected {
    pub(crate) async fn open(
        store: &Store,
        id: MailboxId,
        name: String,
        read_only: bool,
    ) -> Result<Selected, StoreError> {
        // Watch first, so no change between snapshot and watch is missed.
        let mut watch = store.watch(id);
        watch.mark_unchanged();
        let snap = store.snapshot(id).await?;
        Ok(Selected {
            id,
            name,
            read_only,
            uid_validity: snap.mailbox.uid_validity,
            uid_next: snap.mailbox.uid_next,
            modseq: snap.mailbox.highest_modseq,
            msgs: snap.messages,
            pending_expunge: Vec::new(),
            watch,
        })
    }

    pub(crate) fn exists(&self) -> u32 {
        self.msgs.len() as u32
    }

    /// Sequence number (1-based) of a UID.
    pub(crate) fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.msgs
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }

    /// Indexes into `msgs` named by a sequence set (of sequence numbers or of UIDs), ascending.
    /// Non-existent UIDs are ignored (RFC 9051 6.4.9); `*` is the last message.
    pub(crate) fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        let Some(last) = self.msgs.last() else {
            return Vec::new();
        };
        let mut out: Vec<usize> = Vec::new();
        if uid {
            let largest = NonZeroU32::new(last.uid.max(1)).unwrap_or(NonZeroU32::MIN);
            for seq in set.0.as_ref() {
                let (a, b) = bounds(seq, largest);
                let start = self.msgs.partition_point(|m| m.uid < a);
                let end = self.msgs.partition_point(|m| m.uid <= b);
                out.extend(start..end);
            }
        } else {
            let largest = NonZeroU32::new(self.exists()).unwrap_or(NonZeroU32::MIN);
            for seq in set.0.as_ref() {
                let (a, b) = bounds(seq, largest);
                let end = (b as usize).min(self.msgs.len());
                out.extend((a as usize).saturating_sub(1)..end);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether a sequence set of sequence numbers names a message beyond EXISTS (a BAD).
    pub(crate) fn out_of_range(&self, set: &SequenceSet) -> bool {
        use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
        let n = self.exists();
        let over = |s: &SeqOrUid| matches!(s, SeqOrUid::Value(v) if v.get() > n);
        set.0.as_ref().iter().any(|s| match s {
            Sequence::Single(a) => over(a),
            Sequence::Range(a, b) => over(a) && over(b),
        })
    }

    /// Syncs with the store, writing untagged responses to `out`.
    pub(crate) async fn refresh(
        &mut self,
        store: &Store,
        allow_expunge: bool,
        condstore: bool,
        qresync: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        self.watch.mark_unchanged();
        let changes = store.changes_since(self.id, self.modseq).await?;
        let known: Vec<Uid> = changes
            .expunged
            .iter()
            .copied()
            .filter(|u| self.seq_of(*u).is_some())
            .collect();
        self.pending_expunge.extend(known);
        if allow_expunge && !self.pending_expunge.is_empty() {
            let mut gone = std::mem::take(&mut self.pending_expunge);
            gone.sort_unstable();
            gone.dedup();
            if qresync {
                // RFC 7162 3.2.10: VANISHED replaces EXPUNGE once QRESYNC is enabled.
                self.msgs.retain(|m| gone.binary_search(&m.uid).is_err());
                out.extend_from_slice(
                    format!("* VANISHED {}\r\n", compress_uids(&gone)).as_bytes(),
                );
            } else {
                // Highest sequence number first, so earlier numbers stay valid while we go.
                for uid in gone.iter().rev() {
                    if let Some(seq) = self.seq_of(*uid) {
                        self.msgs.remove(seq as usize - 1);
                        out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
                    }
                }
            }
        }
        let before = self.msgs.len();
        for m in changes.changed {
            match self.msgs.binary_search_by_key(&m.uid, |x| x.uid) {
                Ok(i) => {
                    let old = &self.msgs[i];
                    if old.flags != m.flags || (condstore && old.modseq != m.modseq) {
                        let modseq = if condstore {
                            format!(" MODSEQ ({})", m.modseq)
                        } else {
                            String::new()
                        };
                        let line = format!(
                            "* {} FETCH (UID {} FLAGS {}{modseq})\r\n",
                            i + 1,
                            m.uid,
                            flag_list(&m.flags)
                        );
                        out.extend_from_slice(line.as_bytes());
                    }
                    self.msgs[i] = m;
                }
                // UIDs only grow: anything at or above our UIDNEXT is new, and comes in UID order.
                Err(_) if m.uid >= self.uid_next => self.msgs.push(m),
                Err(_) => {} // expunged meanwhile
            }
        }
        if self.msgs.len() > before {
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.msgs.len()).as_bytes());
        }
        self.modseq = self.modseq.max(changes.mailbox.highest_modseq);
        self.uid_next = changes.mailbox.uid_next;
        Ok(())
    }

    /// Applies our own flag changes (so the next resync does not report them again).
    pub(crate) fn apply_local(&mut self, updated: &[MessageMeta]) {
        for m in updated {
            if let Ok(i) = self.msgs.binary_search_by_key(&m.uid, |x| x.uid) {
                self.msgs[i] = m.clone();
            }
        }
    }
}

fn bounds(seq: &imap_codec::imap_types::sequence::Sequence, largest: NonZeroU32) -> (u32, u32) {
    use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
    let v = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest.get(),
    };
    match seq {
        Sequence::Single(a) => (v(a), v(a)),
        Sequence::Range(a, b) => (v(a).min(v(b)), v(a).max(v(b))),
    }
}

/// "1:3,7,9:10" from ascending UIDs.
pub(crate) fn compress_uids(uids: &[Uid]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::compress_uids;

    #[test]
    fn compresses() {
        assert_eq!(compress_uids(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(compress_uids(&[5]), "5");
        assert_eq!(compress_uids(&[]), "");
    }
}
