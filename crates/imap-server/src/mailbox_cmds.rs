//! Authenticated-state commands on mailboxes: SELECT/EXAMINE, CREATE, DELETE, RENAME,
//! SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB, STATUS, APPEND.

use std::collections::BTreeMap;

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as WireMailbox};
use imap_codec::imap_types::status::StatusDataItemName;
use store::{Flags, Mailbox, NewMessage, StoreError};

use crate::names::{self, DELIMITER};
use crate::selected::{Selected, compress_uids, flag_list};
use crate::session::{Flow, Session};

/// What a LIST asks for.
#[derive(Debug, Default)]
struct ListOptions {
    lsub: bool,
    subscribed_only: bool,
    special_use_only: bool,
    recursive_match: bool,
    show_subscribed: bool,
    status: Option<Vec<String>>,
}

/// The system flags every mailbox permits.
const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// Store flags from wire flags (`\Recent` and unknown `\X` are ignored).
pub(crate) fn to_store_flags(flags: &[Flag<'_>]) -> Flags {
    let names: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    Flags::from_names(&names)
}

impl Session {
    fn account(&self) -> store::AccountId {
        self.user
            .as_ref()
            .map(|u| u.account)
            .unwrap_or(store::AccountId(0))
    }

    /// Resolves a mailbox name from the wire to an existing mailbox, or answers NO.
    pub(crate) async fn existing(
        &mut self,
        tag: &str,
        name: &WireMailbox<'_>,
    ) -> Result<Option<Mailbox>, crate::session::End> {
        self.existing_or(tag, name, "[NONEXISTENT] No such mailbox")
            .await
    }

    /// As [`Session::existing`], answering `missing` when the mailbox does not exist.
    pub(crate) async fn existing_or(
        &mut self,
        tag: &str,
        name: &WireMailbox<'_>,
        missing: &str,
    ) -> Result<Option<Mailbox>, crate::session::End> {
        let Some(name) = names::from_wire(name, self.utf8) else {
            self.no(tag, "[CANNOT] Invalid mailbox name")?;
            return Ok(None);
        };
        match self.srv.store.mailbox_by_name(self.account(), &name).await {
            Ok(Some(m)) => Ok(Some(m)),
            Ok(None) => {
                self.no(tag, missing)?;
                Ok(None)
            }
            Err(e) => {
                self.store_error(tag, e)?;
                Ok(None)
            }
        }
    }

    pub(crate) fn store_error(&mut self, tag: &str, e: StoreError) -> Flow {
        match e {
            StoreError::NotFound(_) => self.no(tag, "[NONEXISTENT] No such mailbox"),
            StoreError::AlreadyExists(_) => self.no(tag, "[ALREADYEXISTS] Mailbox already exists"),
            StoreError::Conflict(why) => self.no(tag, &format!("[CANNOT] {why}")),
            e => {
                tracing::error!("store error: {e}");
                self.no(tag, "[SERVERBUG] Internal error, try again later")
            }
        }
    }

    pub(crate) async fn handle_select(
        &mut self,
        tag: &str,
        name: &WireMailbox<'_>,
        read_only: bool,
        params: &[SelectParameter],
    ) -> Flow {
        if self.selected.take().is_some() {
            // RFC 7162 3.2.11 / RFC 9051 6.3.2: the previous mailbox is closed.
            self.untagged("OK [CLOSED] Previous mailbox closed");
        }
        let Some(mb) = self.existing(tag, name).await? else {
            return Ok(());
        };
        let mut qresync = None;
        for p in params {
            match p {
                SelectParameter::CondStore => self.condstore = true,
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.qresync {
                        return self.bad(tag, "QRESYNC not enabled");
                    }
                    qresync = Some((
                        uid_validity.get(),
                        mod_sequence_value.get(),
                        known_uids.clone(),
                    ));
                }
            }
        }
        let (sel, snap) =
            match Selected::open(&self.srv.store, mb.id, mb.name.clone(), read_only).await {
                Ok(s) => s,
                Err(e) => return self.store_error(tag, e),
            };
        let keywords = &snap.keywords;
        let flags = if keywords.is_empty() {
            SYSTEM_FLAGS.to_string()
        } else {
            format!("{SYSTEM_FLAGS} {}", keywords.join(" "))
        };
        self.untagged(&format!("FLAGS ({flags})"));
        let perm = if read_only {
            "()".to_string()
        } else {
            format!("({flags} \\*)")
        };
        self.untagged(&format!("OK [PERMANENTFLAGS {perm}] Flags permitted"));
        self.untagged(&format!("{} EXISTS", sel.exists()));
        if self.rev2 {
            // RFC 9051 6.3.2: a LIST response for the mailbox; no RECENT, no UNSEEN.
            let mut line = b"* LIST () \"/\" ".to_vec();
            names::to_wire(&mut line, &sel.name, true);
            line.extend_from_slice(b"\r\n");
            self.out().extend_from_slice(&line);
        } else {
            self.untagged("0 RECENT");
            if let Some(seq) = snap.first_unseen.and_then(|u| sel.seq_of(u)) {
                self.untagged(&format!("OK [UNSEEN {seq}] First unseen"));
            }
        }
        self.untagged(&format!("OK [UIDVALIDITY {}] UIDs valid", sel.uid_validity));
        self.untagged(&format!("OK [UIDNEXT {}] Predicted next UID", sel.uid_next));
        self.untagged(&format!("OK [HIGHESTMODSEQ {}] Highest", sel.modseq));
        if let Some((validity, since, known)) = qresync
            && validity == sel.uid_validity
        {
            self.qresync_report(&sel, since, known.as_ref()).await;
        }
        let mode = if read_only {
            "[READ-ONLY]"
        } else {
            "[READ-WRITE]"
        };
        self.selected = Some(sel);
        self.ok(
            tag,
            &format!(
                "{mode} {} completed",
                if read_only { "EXAMINE" } else { "SELECT" }
            ),
        )
    }

    /// RFC 7162 3.2.5: what changed since the client's MODSEQ, as VANISHED (EARLIER) and FETCH.
    async fn qresync_report(
        &mut self,
        sel: &Selected,
        since: u64,
        known: Option<&imap_codec::imap_types::sequence::SequenceSet>,
    ) {
        let Ok(changes) = self.srv.store.changes_since(sel.id, since).await else {
            return;
        };
        let mut vanished = changes.expunged;
        if let Some(known) = known {
            let largest = std::num::NonZeroU32::new(u32::MAX).unwrap_or(std::num::NonZeroU32::MIN);
            let set: std::collections::BTreeSet<u32> = known
                .iter(largest)
                .map(|v| v.get())
                .take(1_000_000)
                .collect();
            vanished.retain(|u| set.contains(u));
        }
        if !vanished.is_empty() {
            self.untagged(&format!("VANISHED (EARLIER) {}", compress_uids(&vanished)));
        }
        for m in changes.changed {
            if let Some(seq) = sel.seq_of(m.uid) {
                self.untagged(&format!(
                    "{seq} FETCH (UID {} FLAGS {} MODSEQ ({}))",
                    m.uid,
                    flag_list(&m.flags),
                    m.modseq
                ));
            }
        }
    }

    pub(crate) async fn handle_create(&mut self, tag: &str, name: &WireMailbox<'_>) -> Flow {
        let Some(name) = names::from_wire(name, self.utf8) else {
            return self.no(tag, "[CANNOT] Invalid mailbox name");
        };
        if name == "INBOX" {
            return self.no(tag, "[ALREADYEXISTS] INBOX always exists");
        }
        // Create missing parents too (RFC 9051 6.3.4 allows it; clients expect it).
        let account = self.account();
        let mut path = String::new();
        let parts: Vec<&str> = name.split(DELIMITER).collect();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                path.push(DELIMITER);
            }
            path.push_str(part);
            let last = i + 1 == parts.len();
            match self.srv.store.create_mailbox(account, &path).await {
                Ok(_) => {}
                Err(StoreError::AlreadyExists(_)) if !last => {}
                Err(e) => return self.store_error(tag, e),
            }
        }
        self.finish(tag, "CREATE completed", true).await
    }

    pub(crate) async fn handle_delete(&mut self, tag: &str, name: &WireMailbox<'_>) -> Flow {
        let Some(name) = names::from_wire(name, self.utf8) else {
            return self.no(tag, "[CANNOT] Invalid mailbox name");
        };
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            self.selected = None;
        }
        match self.srv.store.delete_mailbox(self.account(), &name).await {
            Ok(()) => self.finish(tag, "DELETE completed", true).await,
            Err(e) => self.store_error(tag, e),
        }
    }

    pub(crate) async fn handle_rename(
        &mut self,
        tag: &str,
        from: &WireMailbox<'_>,
        to: &WireMailbox<'_>,
    ) -> Flow {
        let (Some(from), Some(to)) = (
            names::from_wire(from, self.utf8),
            names::from_wire(to, self.utf8),
        ) else {
            return self.no(tag, "[CANNOT] Invalid mailbox name");
        };
        if to == "INBOX" {
            return self.no(tag, "[ALREADYEXISTS] INBOX always exists");
        }
        match self
            .srv
            .store
            .rename_mailbox(self.account(), &from, &to)
            .await
        {
            Ok(()) => {
                if let Some(sel) = self.selected.as_mut()
                    && sel.name == from
                    && from != "INBOX"
                {
                    sel.name = to;
                }
                self.finish(tag, "RENAME completed", true).await
            }
            Err(e) => self.store_error(tag, e),
        }
    }

    pub(crate) async fn handle_subscribe(
        &mut self,
        tag: &str,
        name: &WireMailbox<'_>,
        on: bool,
    ) -> Flow {
        let Some(name) = names::from_wire(name, self.utf8) else {
            return self.no(tag, "[CANNOT] Invalid mailbox name");
        };
        match self
            .srv
            .store
            .set_subscribed(self.account(), &name, on)
            .await
        {
            Ok(()) => {
                self.finish(
                    tag,
                    if on {
                        "SUBSCRIBE completed"
                    } else {
                        "UNSUBSCRIBE completed"
                    },
                    true,
                )
                .await
            }
            Err(e) => self.store_error(tag, e),
        }
    }

    pub(crate) async fn handle_list(
        &mut self,
        tag: &str,
        reference: &WireMailbox<'_>,
        wildcard: &ListMailbox<'_>,
        lsub: bool,
    ) -> Flow {
        let pattern = names::pattern(reference, wildcard, self.utf8);
        let opts = ListOptions {
            lsub,
            ..Default::default()
        };
        self.list(tag, vec![pattern], opts).await
    }

    /// LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819).
    pub(crate) async fn handle_list_extended(
        &mut self,
        tag: &str,
        l: crate::extended::ExtendedList,
    ) -> Flow {
        let decode = |b: &[u8]| {
            let t = String::from_utf8_lossy(b).into_owned();
            if self.utf8 || !t.contains('&') {
                t
            } else {
                proto_imap::mutf7::decode(&t).unwrap_or(t)
            }
        };
        let reference = decode(&l.reference);
        let patterns = l
            .patterns
            .iter()
            .map(|p| format!("{reference}{}", decode(p)))
            .collect();
        let opts = ListOptions {
            lsub: false,
            subscribed_only: l.subscribed,
            special_use_only: l.special_use_only,
            recursive_match: l.recursive_match,
            show_subscribed: l.ret_subscribed || l.subscribed,
            status: l.ret_status,
        };
        self.list(tag, patterns, opts).await
    }

    async fn list(&mut self, tag: &str, patterns: Vec<String>, opts: ListOptions) -> Flow {
        let verb = if opts.lsub { "LSUB" } else { "LIST" };
        if patterns.len() == 1 && patterns[0].is_empty() {
            // RFC 9051 6.3.9: the delimiter and root.
            self.untagged(&format!("{verb} (\\Noselect) \"/\" \"\""));
            return self.finish(tag, &format!("{verb} completed"), true).await;
        }
        let account = self.account();
        let (boxes, subs) = match (
            self.srv.store.list_mailboxes(account).await,
            self.srv.store.subscriptions(account).await,
        ) {
            (Ok(b), Ok(s)) => (b, s),
            (Err(e), _) | (_, Err(e)) => return self.store_error(tag, e),
        };
        // name -> mailbox (None: an implied parent or a subscription to a missing mailbox).
        let mut all: BTreeMap<String, Option<Mailbox>> = BTreeMap::new();
        for b in &boxes {
            let mut parent = b.name.as_str();
            while let Some((p, _)) = parent.rsplit_once(DELIMITER) {
                all.entry(p.to_string()).or_insert(None);
                parent = p;
            }
            all.insert(b.name.clone(), Some(b.clone()));
        }
        let has_children = |name: &str| {
            let prefix = format!("{name}{DELIMITER}");
            all.range(prefix.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&prefix))
        };
        let subscribed: std::collections::BTreeSet<&String> = subs.iter().collect();
        let candidates: Vec<String> = if opts.lsub || opts.subscribed_only {
            subs.clone()
        } else {
            all.keys().cloned().collect()
        };
        let mut entries: Vec<(String, Vec<String>, Option<Mailbox>)> = Vec::new();
        for name in candidates {
            let matched = patterns.iter().any(|p| names::matches(p, &name));
            let mb = all.get(&name).cloned().flatten();
            let mut attrs: Vec<String> = Vec::new();
            let mut child_info = false;
            if !matched {
                // RFC 5258 3.5 (RECURSIVEMATCH): a parent whose subscribed child matched.
                if opts.recursive_match
                    && let Some((parent, _)) = name.rsplit_once(DELIMITER)
                    && patterns.iter().any(|p| names::matches(p, parent))
                    && !subscribed.contains(&parent.to_string())
                {
                    entries.push((
                        parent.to_string(),
                        vec![],
                        all.get(parent).cloned().flatten(),
                    ));
                    if let Some(last) = entries.last_mut() {
                        last.1.push("CHILDINFO".into());
                    }
                }
                continue;
            }
            let _ = &mut child_info;
            if mb.is_none() {
                attrs.push(
                    if all.contains_key(&name) {
                        "\\Noselect"
                    } else {
                        "\\NonExistent"
                    }
                    .into(),
                );
            }
            if !opts.lsub {
                attrs.push(
                    if has_children(&name) {
                        "\\HasChildren"
                    } else {
                        "\\HasNoChildren"
                    }
                    .into(),
                );
                if let Some(s) = mb.as_ref().and_then(|m| m.special_use.clone()) {
                    attrs.push(s);
                } else if opts.special_use_only {
                    continue;
                }
                if opts.show_subscribed && subscribed.contains(&name) {
                    attrs.push("\\Subscribed".into());
                }
            }
            entries.push((name, attrs, mb));
        }
        entries.dedup_by(|a, b| a.0 == b.0);
        for (name, attrs, mb) in entries {
            let (attrs, extra): (Vec<String>, Vec<String>) =
                attrs.into_iter().partition(|a| a != "CHILDINFO");
            let mut line = format!("* {verb} ({}) \"/\" ", attrs.join(" ")).into_bytes();
            names::to_wire(&mut line, &name, self.utf8);
            if !extra.is_empty() {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            self.out().extend_from_slice(&line);
            if let (Some(items), Some(mb)) = (&opts.status, mb) {
                // RFC 5819: a STATUS response right after the mailbox's LIST response.
                self.write_status(&mb, items).await;
            }
        }
        self.finish(tag, &format!("{verb} completed"), true).await
    }

    /// Writes `* STATUS name (...)` for item names given as upper-case words.
    async fn write_status(&mut self, mb: &Mailbox, items: &[String]) {
        let Ok(st) = self.srv.store.mailbox_status(mb.id).await else {
            return;
        };
        let mut parts = Vec::new();
        for item in items {
            parts.push(match item.as_str() {
                "MESSAGES" => format!("MESSAGES {}", st.messages),
                "RECENT" => "RECENT 0".to_string(),
                "UIDNEXT" => format!("UIDNEXT {}", mb.uid_next),
                "UIDVALIDITY" => format!("UIDVALIDITY {}", mb.uid_validity),
                "UNSEEN" => format!("UNSEEN {}", st.unseen),
                "DELETED" => format!("DELETED {}", st.deleted),
                "SIZE" => format!("SIZE {}", st.size),
                "HIGHESTMODSEQ" => format!("HIGHESTMODSEQ {}", mb.highest_modseq),
                _ => continue,
            });
        }
        let mut line = b"* STATUS ".to_vec();
        names::to_wire(&mut line, &mb.name, self.utf8);
        line.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        self.out().extend_from_slice(&line);
    }

    pub(crate) async fn handle_status(
        &mut self,
        tag: &str,
        name: &WireMailbox<'_>,
        items: &[StatusDataItemName],
    ) -> Flow {
        let Some(mb) = self.existing(tag, name).await? else {
            return Ok(());
        };
        let words: Vec<String> = items
            .iter()
            .map(|i| match i {
                StatusDataItemName::Messages => "MESSAGES",
                StatusDataItemName::Recent => "RECENT",
                StatusDataItemName::UidNext => "UIDNEXT",
                StatusDataItemName::UidValidity => "UIDVALIDITY",
                StatusDataItemName::Unseen => "UNSEEN",
                StatusDataItemName::Deleted => "DELETED",
                StatusDataItemName::Size => "SIZE",
                StatusDataItemName::HighestModSeq => "HIGHESTMODSEQ",
                StatusDataItemName::DeletedStorage => "DELETED-STORAGE",
            })
            .map(String::from)
            .collect();
        self.write_status(&mb, &words).await;
        self.finish(tag, "STATUS completed", true).await
    }

    /// Whether `extra` more octets would exceed the account's quota; answers NO if so.
    pub(crate) async fn quota_refuses(
        &mut self,
        tag: &str,
        extra: u64,
    ) -> Result<bool, crate::session::End> {
        let quota = self.srv.settings.quota;
        if quota == 0 {
            return Ok(false);
        }
        let used = self
            .srv
            .store
            .account_usage(self.account())
            .await
            .unwrap_or(0);
        if used.saturating_add(extra) > quota {
            // RFC 9208 4.3: [OVERQUOTA].
            self.no(tag, "[OVERQUOTA] Quota exceeded")?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes the QUOTA response of the account's one quota root "".
    async fn write_quota(&mut self) {
        let quota = self.srv.settings.quota;
        if quota == 0 {
            return;
        }
        let used = self
            .srv
            .store
            .account_usage(self.account())
            .await
            .unwrap_or(0);
        // RFC 9208 5.1: STORAGE in units of 1024 octets.
        self.untagged(&format!(
            "QUOTA \"\" (STORAGE {} {})",
            used.div_ceil(1024),
            quota / 1024
        ));
    }

    pub(crate) async fn handle_getquotaroot(&mut self, tag: &str, name: &WireMailbox<'_>) -> Flow {
        let Some(mb) = self.existing(tag, name).await? else {
            return Ok(());
        };
        let mut line = b"* QUOTAROOT ".to_vec();
        names::to_wire(&mut line, &mb.name, self.utf8);
        if self.srv.settings.quota > 0 {
            line.extend_from_slice(b" \"\"");
        }
        line.extend_from_slice(b"\r\n");
        self.out().extend_from_slice(&line);
        self.write_quota().await;
        self.finish(tag, "GETQUOTAROOT completed", true).await
    }

    pub(crate) async fn handle_getquota(&mut self, tag: &str, root: &str) -> Flow {
        if !root.is_empty() || self.srv.settings.quota == 0 {
            return self.no(tag, "[NONEXISTENT] No such quota root");
        }
        self.write_quota().await;
        self.finish(tag, "GETQUOTA completed", true).await
    }

    pub(crate) async fn handle_append(
        &mut self,
        tag: &str,
        name: &WireMailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<DateTime>,
        message: LiteralOrLiteral8<'_>,
    ) -> Flow {
        let data = match &message {
            LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
            LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
        };
        if data.is_empty() {
            return self.no(tag, "Empty message");
        }
        // RFC 9051 6.3.12: [TRYCREATE] tells the client to CREATE and retry.
        let Some(mb) = self
            .existing_or(tag, name, "[TRYCREATE] No such mailbox")
            .await?
        else {
            return Ok(());
        };
        if self.quota_refuses(tag, data.len() as u64).await? {
            return Ok(());
        }
        let internal_date = date
            .map(|d| d.as_ref().timestamp())
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let msg = NewMessage {
            data,
            internal_date,
            flags: to_store_flags(flags),
        };
        match self.srv.store.append(mb.id, vec![msg]).await {
            Ok(uids) => {
                let uid = uids.first().copied().unwrap_or(0);
                self.finish(
                    tag,
                    &format!("[APPENDUID {} {uid}] APPEND completed", mb.uid_validity),
                    true,
                )
                .await
            }
            Err(e) => self.store_error(tag, e),
        }
    }
}
