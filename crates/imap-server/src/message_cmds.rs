//! Selected-state commands on messages: FETCH, STORE, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT.

use std::num::NonZeroU32;

use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::{FetchModifier, StoreModifier};
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItemName, Part, Section,
};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;
use imap_codec::imap_types::sequence::SequenceSet;
use store::{FlagOp, Flags, MessageMeta};

use crate::mailbox_cmds::to_store_flags;
use crate::selected::{compress_uids, flag_list};
use crate::session::{Flow, Session};

/// The IMAP date-time of INTERNALDATE (RFC 9051 9: date-time).
fn internal_date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("\"%d-%b-%Y %H:%M:%S +0000\"")
        .to_string()
}

fn part_numbers(p: &Option<Part>) -> Vec<u32> {
    p.as_ref()
        .map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
        .unwrap_or_default()
}

/// Our section type and its label for the response, e.g. `1.HEADER.FIELDS (SUBJECT)`.
fn convert_section(s: &Option<Section<'_>>) -> (message::Section, String) {
    use message::SectionText as T;
    let whole = |p: &Part| p.0.as_ref().iter().map(|n| n.get()).collect::<Vec<u32>>();
    let fields = |f: &[imap_codec::imap_types::core::AString<'_>]| {
        f.iter()
            .map(|a| String::from_utf8_lossy(a.as_ref()).to_ascii_uppercase())
            .collect::<Vec<_>>()
    };
    // (part, what to return, the label's text after the part number)
    let (part, text, what) = match s {
        None => (vec![], T::Full, String::new()),
        Some(Section::Part(p)) => (whole(p), T::Full, String::new()),
        Some(Section::Header(p)) => (part_numbers(p), T::Header, "HEADER".into()),
        Some(Section::HeaderFields(p, f)) => {
            let names = fields(f.as_ref());
            let what = format!("HEADER.FIELDS ({})", names.join(" "));
            (part_numbers(p), T::HeaderFields(names), what)
        }
        Some(Section::HeaderFieldsNot(p, f)) => {
            let names = fields(f.as_ref());
            let what = format!("HEADER.FIELDS.NOT ({})", names.join(" "));
            (part_numbers(p), T::HeaderFieldsNot(names), what)
        }
        Some(Section::Text(p)) => (part_numbers(p), T::Text, "TEXT".into()),
        Some(Section::Mime(p)) => (whole(p), T::Mime, "MIME".into()),
    };
    let number = part
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let label = match (number.is_empty(), what.is_empty()) {
        (true, _) => what,
        (false, true) => number,
        (false, false) => format!("{number}.{what}"),
    };
    (message::Section { part, text }, label)
}

/// Applies `<origin.count>` to section data.
fn partial(data: &[u8], range: Option<(u32, NonZeroU32)>) -> (&[u8], String) {
    match range {
        None => (data, String::new()),
        Some((origin, count)) => {
            let start = (origin as usize).min(data.len());
            let end = start.saturating_add(count.get() as usize).min(data.len());
            (&data[start..end], format!("<{origin}>"))
        }
    }
}

/// Whether fetching this item marks the message \Seen (RFC 9051 6.4.5).
fn sets_seen(item: &MessageDataItemName<'_>) -> bool {
    match item {
        MessageDataItemName::BodyExt { peek, .. } | MessageDataItemName::Binary { peek, .. } => {
            !peek
        }
        MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => true,
        _ => false,
    }
}

/// Cannot happen: the parts are read or rendered whenever a structure item is asked for.
const PARTS_MISSING: &str = "[SERVERBUG] Message structure unavailable";

/// Whether an item is served from the message's stored FETCH parts (see `indexer`).
fn is_structure(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::Envelope
            | MessageDataItemName::BodyStructure
            | MessageDataItemName::Body
    )
}

/// Whether an item needs the message's bytes.
fn needs_content(item: &MessageDataItemName<'_>) -> bool {
    !is_structure(item)
        && !matches!(
            item,
            MessageDataItemName::Flags
                | MessageDataItemName::InternalDate
                | MessageDataItemName::Rfc822Size
                | MessageDataItemName::Uid
                | MessageDataItemName::ModSeq
        )
}

impl Session {
    pub(crate) async fn handle_fetch(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'_>,
        uid: bool,
        modifiers: &[FetchModifier],
    ) -> Flow {
        let mut items: Vec<MessageDataItemName<'_>> = match items {
            MacroOrMessageDataItemNames::Macro(m) => {
                m.expand().into_iter().map(|i| i.into_static()).collect()
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
        };
        let mut changed_since = None;
        let mut vanished = false;
        for m in modifiers {
            match m {
                FetchModifier::ChangedSince(v) => {
                    changed_since = Some(v.get());
                    self.condstore = true;
                }
                FetchModifier::Vanished => vanished = true,
            }
        }
        if vanished && (!uid || !self.qresync || changed_since.is_none()) {
            return self.bad(tag, "VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE");
        }
        if uid && !items.iter().any(|i| matches!(i, MessageDataItemName::Uid)) {
            items.insert(0, MessageDataItemName::Uid);
        }
        // RFC 7162 3.1.4.1: CHANGEDSINCE implies the MODSEQ item.
        if changed_since.is_some()
            && !items
                .iter()
                .any(|i| matches!(i, MessageDataItemName::ModSeq))
        {
            items.push(MessageDataItemName::ModSeq);
        }
        if items
            .iter()
            .any(|i| matches!(i, MessageDataItemName::ModSeq))
        {
            self.condstore = true;
        }
        self.sync(false).await;
        let Some(sel) = self.selected.as_ref() else {
            return self.bad(tag, "No mailbox selected");
        };
        if !uid && sel.out_of_range(set) {
            return self.bad(tag, "Message sequence number out of range");
        }
        let indexes = sel.resolve(set, uid);
        let mut metas = match sel.load(&self.srv.store, &indexes).await {
            Ok(m) => m,
            Err(e) => return self.store_error(tag, e),
        };
        // Expunged by another session since our last resync (reported at the next one). A UID
        // FETCH ignores UIDs that do not exist (RFC 9051 6.4.9); a sequence number FETCH
        // answers NO for them (RFC 2180 4.1.2).
        let mut failed = !uid && metas.len() < indexes.len();
        if let Some(since) = changed_since {
            metas.retain(|(_, m)| m.modseq > since);
        }
        if vanished && let Some(since) = changed_since {
            let store = self.srv.store.clone();
            let id = sel.id;
            if let Ok(ch) = store.changes_since(id, since).await {
                let largest = NonZeroU32::new(u32::MAX).unwrap_or(NonZeroU32::MIN);
                let wanted: std::collections::BTreeSet<u32> =
                    set.iter(largest).map(|v| v.get()).take(1_000_000).collect();
                let gone: Vec<u32> = ch
                    .expunged
                    .into_iter()
                    .filter(|u| wanted.contains(u))
                    .collect();
                if !gone.is_empty() {
                    self.untagged(&format!("VANISHED (EARLIER) {}", compress_uids(&gone)));
                }
            }
        }
        // Mark \Seen first, so the responses carry the new flags (RFC 9051 6.4.5).
        let read_only = self.selected.as_ref().is_some_and(|s| s.read_only);
        let mut seen_changed = std::collections::HashSet::new();
        if !read_only && items.iter().any(sets_seen) {
            let unseen: Vec<u32> = metas
                .iter()
                .filter(|(_, m)| !m.flags.seen())
                .map(|(_, m)| m.uid)
                .collect();
            if !unseen.is_empty() {
                let id = self.selected.as_ref().expect("selected").id;
                match self
                    .srv
                    .store
                    .store_flags(
                        id,
                        unseen,
                        FlagOp::Add,
                        Flags {
                            system: Flags::SEEN,
                            keywords: vec![],
                        },
                        None,
                    )
                    .await
                {
                    Ok(r) => {
                        // The responses carry the flags as they are now.
                        let updated: std::collections::HashMap<u32, &MessageMeta> =
                            r.updated.iter().map(|m| (m.uid, m)).collect();
                        for (_, m) in &mut metas {
                            if let Some(u) = updated.get(&m.uid) {
                                *m = (*u).clone();
                                seen_changed.insert(m.uid);
                            }
                        }
                        if let Some(sel) = self.selected.as_mut() {
                            sel.apply_local(&r.updated);
                        }
                    }
                    Err(e) => tracing::warn!("setting \\Seen failed: {e}"),
                }
            }
        }
        let with_content = items.iter().any(needs_content);
        // ENVELOPE and BODYSTRUCTURE come from the parts rendered when the message was
        // summarised; a message the indexer has not reached yet is rendered here.
        let want_parts = items.iter().any(is_structure);
        let mut stored = if want_parts {
            let blobs = metas.iter().map(|(_, m)| m.blob).collect();
            self.srv.store.fetch_parts(blobs).await.unwrap_or_else(|e| {
                tracing::warn!("reading stored FETCH parts: {e}");
                Vec::new()
            })
        } else {
            Vec::new()
        }
        .into_iter();
        for (i, meta) in metas {
            let mut parts = stored
                .next()
                .flatten()
                .filter(|p| indexer::fetch_parts(p).is_some());
            let content = if with_content || (want_parts && parts.is_none()) {
                match self.srv.store.read_blob(meta.blob).await {
                    Ok(c) => Some(c),
                    Err(_) => {
                        // Expunged by another session after our last resync.
                        failed = true;
                        continue;
                    }
                }
            } else {
                None
            };
            if want_parts && parts.is_none() {
                parts = content.as_deref().map(indexer::render_fetch);
            }
            let parts = parts.as_deref().and_then(indexer::fetch_parts);
            let include_flags = seen_changed.contains(&meta.uid)
                && !items
                    .iter()
                    .any(|i| matches!(i, MessageDataItemName::Flags));
            if let Err(code) = self.write_fetch(
                i as u32 + 1,
                &meta,
                &items,
                content.as_deref(),
                parts,
                include_flags,
            ) {
                return self.no(tag, code);
            }
            if self.out().len() >= 256 * 1024 {
                self.flush().await?;
            }
        }
        if failed {
            return self.no(
                tag,
                "Some messages were expunged meanwhile and could not be fetched",
            );
        }
        self.ok(
            tag,
            if uid {
                "UID FETCH completed"
            } else {
                "FETCH completed"
            },
        )
    }

    /// Writes one `* n FETCH (...)` response.
    fn write_fetch(
        &mut self,
        seq: u32,
        meta: &MessageMeta,
        items: &[MessageDataItemName<'_>],
        content: Option<&[u8]>,
        parts: Option<indexer::FetchParts<'_>>,
        extra_flags: bool,
    ) -> Result<(), &'static str> {
        let raw = content.unwrap_or_default();
        let mut o: Vec<u8> = format!("* {seq} FETCH (").into_bytes();
        let mut first = true;
        let mut sep = |o: &mut Vec<u8>| {
            if !first {
                o.push(b' ');
            }
            first = false;
        };
        if extra_flags {
            sep(&mut o);
            o.extend_from_slice(format!("FLAGS {}", flag_list(&meta.flags)).as_bytes());
        }
        for item in items {
            sep(&mut o);
            match item {
                MessageDataItemName::Uid => {
                    o.extend_from_slice(format!("UID {}", meta.uid).as_bytes())
                }
                MessageDataItemName::Flags => {
                    o.extend_from_slice(format!("FLAGS {}", flag_list(&meta.flags)).as_bytes())
                }
                MessageDataItemName::InternalDate => o.extend_from_slice(
                    format!("INTERNALDATE {}", internal_date(meta.internal_date)).as_bytes(),
                ),
                MessageDataItemName::Rfc822Size => {
                    o.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes())
                }
                MessageDataItemName::ModSeq => {
                    o.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes())
                }
                MessageDataItemName::Envelope => {
                    o.extend_from_slice(b"ENVELOPE ");
                    o.extend_from_slice(parts.ok_or(PARTS_MISSING)?.envelope);
                }
                MessageDataItemName::BodyStructure => {
                    o.extend_from_slice(b"BODYSTRUCTURE ");
                    o.extend_from_slice(parts.ok_or(PARTS_MISSING)?.body_structure);
                }
                MessageDataItemName::Body => {
                    o.extend_from_slice(b"BODY ");
                    o.extend_from_slice(parts.ok_or(PARTS_MISSING)?.body);
                }
                MessageDataItemName::Rfc822 => {
                    o.extend_from_slice(b"RFC822 ");
                    proto_imap::literal(&mut o, raw, false);
                }
                MessageDataItemName::Rfc822Header | MessageDataItemName::Rfc822Text => {
                    let (label, text) = match item {
                        MessageDataItemName::Rfc822Header => {
                            ("RFC822.HEADER ", message::SectionText::Header)
                        }
                        _ => ("RFC822.TEXT ", message::SectionText::Text),
                    };
                    let s = message::section(raw, &message::Section { part: vec![], text });
                    o.extend_from_slice(label.as_bytes());
                    proto_imap::nstring(&mut o, s.as_deref());
                }
                MessageDataItemName::BodyExt {
                    section,
                    partial: range,
                    ..
                } => {
                    let (sec, label) = convert_section(section);
                    let data = message::section(raw, &sec);
                    match data {
                        Some(d) => {
                            let (slice, origin) = partial(&d, *range);
                            o.extend_from_slice(format!("BODY[{label}]{origin} ").as_bytes());
                            proto_imap::literal(&mut o, slice, false);
                        }
                        None => o.extend_from_slice(format!("BODY[{label}] NIL").as_bytes()),
                    }
                }
                MessageDataItemName::Binary {
                    section,
                    partial: range,
                    ..
                } => {
                    let part: Vec<u32> = section.iter().map(|n| n.get()).collect();
                    let label = part
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(".");
                    match message::binary(raw, &part) {
                        Ok(d) => {
                            let (slice, origin) = partial(&d, *range);
                            o.extend_from_slice(format!("BINARY[{label}]{origin} ").as_bytes());
                            proto_imap::literal(&mut o, slice, slice.contains(&0));
                        }
                        Err(message::BinaryError::NoSuchPart) => {
                            o.extend_from_slice(format!("BINARY[{label}] NIL").as_bytes())
                        }
                        Err(_) => {
                            return Err(
                                "[UNKNOWN-CTE] Cannot decode this part's Content-Transfer-Encoding",
                            );
                        }
                    }
                }
                MessageDataItemName::BinarySize { section } => {
                    let part: Vec<u32> = section.iter().map(|n| n.get()).collect();
                    let label = part
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(".");
                    match message::binary(raw, &part) {
                        Ok(d) => o.extend_from_slice(
                            format!("BINARY.SIZE[{label}] {}", d.len()).as_bytes(),
                        ),
                        Err(message::BinaryError::NoSuchPart) => {
                            o.extend_from_slice(format!("BINARY.SIZE[{label}] NIL").as_bytes())
                        }
                        Err(_) => {
                            return Err(
                                "[UNKNOWN-CTE] Cannot decode this part's Content-Transfer-Encoding",
                            );
                        }
                    }
                }
            }
        }
        o.extend_from_slice(b")\r\n");
        self.out().extend_from_slice(&o);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn handle_store(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        modifiers: &[StoreModifier],
    ) -> Flow {
        let unchanged_since = modifiers
            .iter()
            .map(|StoreModifier::UnchangedSince(v)| *v)
            .next();
        if unchanged_since.is_some() {
            self.condstore = true;
        }
        self.sync(false).await;
        let Some(sel) = self.selected.as_ref() else {
            return self.bad(tag, "No mailbox selected");
        };
        if sel.read_only {
            return self.no(tag, "[READ-ONLY] Mailbox is read-only");
        }
        if !uid && sel.out_of_range(set) {
            return self.bad(tag, "Message sequence number out of range");
        }
        let uids = sel.resolve_uids(set, uid);
        let op = match kind {
            StoreType::Replace => FlagOp::Replace,
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
        };
        let id = sel.id;
        let result = match self
            .srv
            .store
            .store_flags(id, uids, op, to_store_flags(flags), unchanged_since)
            .await
        {
            Ok(r) => r,
            Err(e) => return self.store_error(tag, e),
        };
        if let Some(sel) = self.selected.as_mut() {
            sel.apply_local(&result.updated);
        }
        let silent = matches!(response, StoreResponse::Silent);
        let mut reported: Vec<&MessageMeta> = result.updated.iter().collect();
        if !silent {
            // RFC 9051 6.4.6: the new flags of every message named, changed or not.
            reported.extend(result.unchanged.iter());
            reported.sort_by_key(|m| m.uid);
        }
        for m in reported {
            if silent && !self.condstore {
                continue;
            }
            let Some(seq) = self.selected.as_ref().and_then(|s| s.seq_of(m.uid)) else {
                continue;
            };
            let mut items = Vec::new();
            if uid {
                items.push(format!("UID {}", m.uid));
            }
            if !silent {
                items.push(format!("FLAGS {}", flag_list(&m.flags)));
            }
            if self.condstore {
                items.push(format!("MODSEQ ({})", m.modseq));
            }
            self.untagged(&format!("{seq} FETCH ({})", items.join(" ")));
        }
        if result.modified.is_empty() {
            self.finish(
                tag,
                if uid {
                    "UID STORE completed"
                } else {
                    "STORE completed"
                },
                false,
            )
            .await
        } else {
            // RFC 7162 3.1.3: MODIFIED lists the messages that failed the UNCHANGEDSINCE test.
            let list = if uid {
                compress_uids(&result.modified)
            } else {
                let sel = self.selected.as_ref();
                let mut seqs: Vec<u32> = result
                    .modified
                    .iter()
                    .filter_map(|u| sel.and_then(|s| s.seq_of(*u)))
                    .collect();
                seqs.sort_unstable();
                compress_uids(&seqs)
            };
            self.finish(
                tag,
                &format!("[MODIFIED {list}] Conditional STORE failed"),
                false,
            )
            .await
        }
    }

    pub(crate) async fn handle_copy(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        dest: &WireMailbox<'_>,
        uid: bool,
        remove: bool,
    ) -> Flow {
        let Some(sel) = self.selected.as_ref() else {
            return self.bad(tag, "No mailbox selected");
        };
        if remove && sel.read_only {
            return self.no(tag, "[READ-ONLY] Mailbox is read-only");
        }
        if !uid && sel.out_of_range(set) {
            return self.bad(tag, "Message sequence number out of range");
        }
        let uids = sel.resolve_uids(set, uid);
        let from = sel.id;
        // RFC 9051 6.4.7: [TRYCREATE] when the destination does not exist.
        let Some(to) = self
            .existing_or(tag, dest, "[TRYCREATE] No such mailbox")
            .await?
        else {
            return Ok(());
        };
        if uids.is_empty() {
            return self.finish(tag, "Nothing to do", !remove || uid).await;
        }
        if !remove {
            let extra: u64 = match self.srv.store.get_messages(from, uids.clone()).await {
                Ok(metas) => metas.iter().map(|m| m.size).sum(),
                Err(e) => return self.store_error(tag, e),
            };
            if self.quota_refuses(tag, extra).await? {
                return Ok(());
            }
        }
        match self
            .srv
            .store
            .copy_messages(from, uids, to.id, remove)
            .await
        {
            Ok(r) => {
                let src: Vec<u32> = r.pairs.iter().map(|p| p.0).collect();
                let dst: Vec<u32> = r.pairs.iter().map(|p| p.1).collect();
                let code = format!(
                    "[COPYUID {} {} {}]",
                    r.uid_validity,
                    compress_uids(&src),
                    compress_uids(&dst)
                );
                if remove {
                    // RFC 6851 4.3: COPYUID goes in an untagged OK before the expunges.
                    self.untagged(&format!("OK {code} Moved"));
                    self.finish(tag, "MOVE completed", true).await
                } else {
                    self.finish(tag, &format!("{code} COPY completed"), true)
                        .await
                }
            }
            Err(e) => self.store_error(tag, e),
        }
    }

    pub(crate) async fn handle_expunge(&mut self, tag: &str, uids: Option<&SequenceSet>) -> Flow {
        let Some(sel) = self.selected.as_ref() else {
            return self.bad(tag, "No mailbox selected");
        };
        if sel.read_only {
            return self.no(tag, "[READ-ONLY] Mailbox is read-only");
        }
        let only = uids.map(|set| sel.resolve_uids(set, true));
        let id = sel.id;
        match self.srv.store.expunge(id, only).await {
            Ok(_) => self.finish(tag, "EXPUNGE completed", true).await,
            Err(e) => self.store_error(tag, e),
        }
    }

    /// CLOSE (expunge silently, then deselect) or UNSELECT (just deselect).
    pub(crate) async fn handle_close(&mut self, tag: &str, expunge: bool) -> Flow {
        let Some(sel) = self.selected.take() else {
            return self.bad(tag, "No mailbox selected");
        };
        if expunge && !sel.read_only {
            // RFC 9051 6.4.1: no untagged EXPUNGE responses for CLOSE.
            if let Err(e) = self.srv.store.expunge(sel.id, None).await {
                return self.store_error(tag, e);
            }
        }
        self.ok(
            tag,
            if expunge {
                "CLOSE completed"
            } else {
                "UNSELECT completed"
            },
        )
    }
}
