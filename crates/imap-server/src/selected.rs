//! The selected mailbox as one session sees it: the sequence-number → UID map, the MODSEQ it
//! is synced to, and the resync that turns store changes into untagged responses without
//! breaking sequence-number rules. Everything else about a message (flags, sizes, dates) is
//! read from the store when a command needs it, so idle sessions stay small.

use std::num::NonZeroU32;

use imap_codec::imap_types::sequence::SequenceSet;
use store::{Flags, MailboxId, MailboxSnapshot, MessageMeta, Store, StoreError, Uid};
use tokio::sync::watch;

use crate::uid_list::UidList;

/// A selected mailbox.
pub(crate) struct Selected {
    pub(crate) id: MailboxId,
    pub(crate) name: String,
    pub(crate) read_only: bool,
    pub(crate) uid_validity: u32,
    pub(crate) uid_next: Uid,
    /// UIDs by sequence number (index + 1).
    uids: UidList,
    /// The MODSEQ this view reflects.
    pub(crate) modseq: u64,
    /// UIDs expunged in the store but not yet reported (EXPUNGE is not allowed during
    /// FETCH, STORE and SEARCH).
    pending_expunge: Vec<Uid>,
    /// Changes this session made itself since the last resync, as (UID, MODSEQ): the resync
    /// does not report them back as FETCH FLAGS.
    own_changes: Vec<(Uid, u64)>,
    pub(crate) watch: watch::Receiver<u64>,
}

/// Formats flags as an IMAP flag list.
pub(crate) fn flag_list(f: &Flags) -> String {
    format!("({})", f.names().join(" "))
}

impl Selected {
    /// Selects a mailbox; also returns the snapshot it was made from (SELECT reports the
    /// keywords and the first unseen message from it).
    pub(crate) async fn open(
        store: &Store,
        id: MailboxId,
        name: String,
        read_only: bool,
    ) -> Result<(Selected, MailboxSnapshot), StoreError> {
        // Watch first, so no change between snapshot and watch is missed.
        let mut watch = store.watch(id);
        watch.mark_unchanged();
        let snap = store.snapshot(id).await?;
        let sel = Selected {
            id,
            name,
            read_only,
            uid_validity: snap.mailbox.uid_validity,
            uid_next: snap.mailbox.uid_next,
            modseq: snap.mailbox.highest_modseq,
            uids: UidList::from_sorted(snap.uids.iter().copied()),
            pending_expunge: Vec::new(),
            own_changes: Vec::new(),
            watch,
        };
        Ok((sel, snap))
    }

    pub(crate) fn exists(&self) -> u32 {
        self.uids.len() as u32
    }

    /// Sequence number (1-based) of a UID.
    pub(crate) fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.uids.index_of(uid).map(|i| i as u32 + 1)
    }

    /// The UID at an index (sequence number - 1).
    pub(crate) fn uid_at(&self, index: usize) -> Uid {
        self.uids.get(index).unwrap_or(0)
    }

    /// Indexes (sequence number - 1) named by a sequence set (of sequence numbers or of
    /// UIDs), ascending. Non-existent UIDs are ignored (RFC 9051 6.4.9); `*` is the last
    /// message.
    pub(crate) fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        let Some(last) = self.uids.last() else {
            return Vec::new();
        };
        let mut out: Vec<usize> = Vec::new();
        if uid {
            let largest = NonZeroU32::new(last.max(1)).unwrap_or(NonZeroU32::MIN);
            for seq in set.0.as_ref() {
                let (a, b) = bounds(seq, largest);
                let start = self.uids.count_below(a);
                let end = self.uids.count_below(b.saturating_add(1));
                out.extend(start..end);
            }
        } else {
            let largest = NonZeroU32::new(self.exists()).unwrap_or(NonZeroU32::MIN);
            for seq in set.0.as_ref() {
                let (a, b) = bounds(seq, largest);
                let end = (b as usize).min(self.uids.len());
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

    /// The UIDs named by a sequence set, ascending.
    pub(crate) fn resolve_uids(&self, set: &SequenceSet, uid: bool) -> Vec<Uid> {
        self.resolve(set, uid)
            .into_iter()
            .map(|i| self.uid_at(i))
            .collect()
    }

    /// The messages at ascending `indexes` that still exist in the store, with their index.
    /// Messages expunged by another session but not yet reported are left out.
    pub(crate) async fn load(
        &self,
        store: &Store,
        indexes: &[usize],
    ) -> Result<Vec<(usize, MessageMeta)>, StoreError> {
        let uids: Vec<Uid> = indexes.iter().map(|i| self.uid_at(*i)).collect();
        let metas = store.get_messages(self.id, uids.clone()).await?;
        // Both ascending: walk them together.
        let mut metas = metas.into_iter().peekable();
        let mut out = Vec::with_capacity(indexes.len());
        for (&i, &uid) in indexes.iter().zip(&uids) {
            while metas.next_if(|m| m.uid < uid).is_some() {}
            if let Some(m) = metas.next_if(|m| m.uid == uid) {
                out.push((i, m));
            }
        }
        Ok(out)
    }

    /// Every message of the view, by index; `None` where the store no longer has it.
    pub(crate) async fn load_all(
        &self,
        store: &Store,
    ) -> Result<Vec<Option<MessageMeta>>, StoreError> {
        let metas = store.list_messages(self.id).await?;
        let mut metas = metas.into_iter().peekable();
        let mut out = Vec::with_capacity(self.uids.len());
        for uid in self.uids.iter() {
            while metas.next_if(|m| m.uid < uid).is_some() {}
            out.push(metas.next_if(|m| m.uid == uid));
        }
        Ok(out)
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
                for uid in &gone {
                    self.uids.remove(*uid);
                }
                out.extend_from_slice(
                    format!("* VANISHED {}\r\n", compress_uids(&gone)).as_bytes(),
                );
            } else {
                // Highest sequence number first, so earlier numbers stay valid while we go.
                for uid in gone.iter().rev() {
                    if let Some(index) = self.uids.remove(*uid) {
                        out.extend_from_slice(format!("* {} EXPUNGE\r\n", index + 1).as_bytes());
                    }
                }
            }
        }
        let mut own = std::mem::take(&mut self.own_changes);
        own.sort_unstable();
        let before = self.uids.len();
        for m in changes.changed {
            match self.uids.index_of(m.uid) {
                Some(i) => {
                    if own.binary_search(&(m.uid, m.modseq)).is_ok() {
                        continue;
                    }
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
                // UIDs only grow: anything at or above our UIDNEXT is new, and comes in UID order.
                None if m.uid >= self.uid_next => self.uids.push(m.uid),
                None => {} // expunged meanwhile
            }
        }
        if self.uids.len() > before {
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.uids.len()).as_bytes());
        }
        self.modseq = self.modseq.max(changes.mailbox.highest_modseq);
        self.uid_next = changes.mailbox.uid_next;
        Ok(())
    }

    /// Notes flag changes this session made (so the next resync does not report them back).
    pub(crate) fn apply_local(&mut self, updated: &[MessageMeta]) {
        self.own_changes
            .extend(updated.iter().map(|m| (m.uid, m.modseq)));
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
