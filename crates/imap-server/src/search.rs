//! SEARCH (RFC 9051 6.4.4): evaluates search keys over the selected mailbox. Metadata keys
//! (flags, sizes, dates, sequence sets, MODSEQ) use the view. Text keys match case-insensitive
//! substrings of the decoded headers and body (any charset): header keys and sent dates read
//! the message summaries (crate `indexer`); BODY and TEXT also read the body text the indexer
//! decoded and folded, in one scan split over the cores.

use imap_codec::imap_types::search::SearchKey;
use store::{Flags, MessageMeta};

use crate::selected::{Selected, compress_uids};
use crate::session::{Flow, Session};

/// Seconds in a day, for date keys (compared in UTC days).
const DAY: i64 = 86_400;

fn day_of(unix: i64) -> i64 {
    unix.div_euclid(DAY)
}

fn date_day(d: &imap_codec::imap_types::datetime::NaiveDate) -> i64 {
    d.as_ref()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or(0)
        .div_euclid(DAY)
}

/// A key that needs the message's content. Probes are evaluated together by one store scan,
/// which returns one bit per probe for each message.
#[derive(Debug)]
enum Probe {
    /// A header field (lower-case name) contains the folded needle.
    Header(String, String),
    /// The decoded body text contains the folded needle.
    Body(String),
    /// A header field or the body contains the folded needle.
    Text(String),
    /// The `Date` header's day is before, on, or on-or-after the given day.
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
}

impl Probe {
    /// `headers` are (lower-case name, folded value); `body` is folded, when loaded.
    fn test(&self, sent: Option<i64>, headers: &[(&str, &str)], body: Option<&str>) -> bool {
        let in_body = |needle: &str| body.is_some_and(|b| b.contains(needle));
        match self {
            // RFC 9051 6.4.4: an empty string matches every message that has the field.
            Probe::Header(name, needle) => headers
                .iter()
                .any(|(n, v)| n == name && v.contains(needle.as_str())),
            Probe::Body(needle) => in_body(needle),
            Probe::Text(needle) => {
                headers.iter().any(|(_, v)| v.contains(needle.as_str())) || in_body(needle)
            }
            Probe::SentBefore(d) => sent.is_some_and(|s| day_of(s) < *d),
            Probe::SentOn(d) => sent.is_some_and(|s| day_of(s) == *d),
            Probe::SentSince(d) => sent.is_some_and(|s| day_of(s) >= *d),
        }
    }
}

/// One bit per probe.
fn probe_bits(
    probes: &[Probe],
    sent: Option<i64>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> u64 {
    probes
        .iter()
        .enumerate()
        .filter(|(_, p)| p.test(sent, headers, body))
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

/// At most this many text keys in one SEARCH (one bit each in a scan result).
const MAX_PROBES: usize = 64;

/// What a SEARCH needs besides the view: the content probes and the resolved sequence sets,
/// both in pre-order of the key tree, the order [`Eval`] consumes them in.
#[derive(Default)]
struct Plan {
    probes: Vec<Probe>,
    sets: Vec<Vec<usize>>,
}

impl Plan {
    fn new(criteria: &[SearchKey<'_>], sel: &Selected) -> Plan {
        let mut plan = Plan::default();
        for k in criteria {
            plan.add(k, sel);
        }
        plan
    }

    fn add(&mut self, k: &SearchKey<'_>, sel: &Selected) {
        use SearchKey as K;
        let text = |a: &dyn AsRef<[u8]>| message::fold(&String::from_utf8_lossy(a.as_ref()));
        let header = |name: &str, a: &dyn AsRef<[u8]>| Probe::Header(name.into(), text(a));
        let probe = match k {
            K::And(v) => {
                v.as_ref().iter().for_each(|k| self.add(k, sel));
                return;
            }
            K::Not(k) => return self.add(k, sel),
            K::Or(a, b) => {
                self.add(a, sel);
                return self.add(b, sel);
            }
            K::SequenceSet(set) => return self.sets.push(sel.resolve(set, false)),
            K::Uid(set) => return self.sets.push(sel.resolve(set, true)),
            K::From(s) => header("from", s),
            K::To(s) => header("to", s),
            K::Cc(s) => header("cc", s),
            K::Bcc(s) => header("bcc", s),
            K::Subject(s) => header("subject", s),
            K::Header(name, value) => Probe::Header(
                String::from_utf8_lossy(name.as_ref()).to_ascii_lowercase(),
                text(value),
            ),
            K::Body(s) => Probe::Body(text(s)),
            K::Text(s) => Probe::Text(text(s)),
            K::SentBefore(d) => Probe::SentBefore(date_day(d)),
            K::SentOn(d) => Probe::SentOn(date_day(d)),
            K::SentSince(d) => Probe::SentSince(date_day(d)),
            _ => return,
        };
        self.probes.push(probe);
    }
}

/// Evaluates the key tree for one message. Every node is visited (no short-circuit), so the
/// cursors into the plan stay in step with the pre-order in which [`Plan`] was built.
struct Eval<'a> {
    plan: &'a Plan,
    probe: usize,
    set: usize,
}

impl Eval<'_> {
    fn eval(&mut self, k: &SearchKey<'_>, idx: usize, m: &MessageMeta, bits: u64) -> bool {
        use SearchKey as K;
        let has = |bit: u32| m.flags.system & bit != 0;
        match k {
            K::And(v) => v
                .as_ref()
                .iter()
                .fold(true, |all, k| self.eval(k, idx, m, bits) & all),
            K::Not(k) => !self.eval(k, idx, m, bits),
            K::Or(a, b) => {
                let a = self.eval(a, idx, m, bits);
                self.eval(b, idx, m, bits) | a
            }
            K::SequenceSet(_) | K::Uid(_) => {
                self.set += 1;
                self.plan.sets[self.set - 1].binary_search(&idx).is_ok()
            }
            K::From(_)
            | K::To(_)
            | K::Cc(_)
            | K::Bcc(_)
            | K::Subject(_)
            | K::Header(..)
            | K::Body(_)
            | K::Text(_)
            | K::SentBefore(_)
            | K::SentOn(_)
            | K::SentSince(_) => {
                self.probe += 1;
                bits >> (self.probe - 1) & 1 == 1
            }
            K::All => true,
            K::Answered => has(Flags::ANSWERED),
            K::Unanswered => !has(Flags::ANSWERED),
            K::Deleted => has(Flags::DELETED),
            K::Undeleted => !has(Flags::DELETED),
            K::Draft => has(Flags::DRAFT),
            K::Undraft => !has(Flags::DRAFT),
            K::Flagged => has(Flags::FLAGGED),
            K::Unflagged => !has(Flags::FLAGGED),
            K::Seen => has(Flags::SEEN),
            K::Unseen => !has(Flags::SEEN),
            // \Recent is not kept (RFC 9051 removed it): nothing is recent, everything is old.
            K::Recent | K::New => false,
            K::Old => true,
            K::Keyword(kw) => m
                .flags
                .keywords
                .iter()
                .any(|k| k.eq_ignore_ascii_case(kw.as_ref())),
            K::Unkeyword(kw) => !m
                .flags
                .keywords
                .iter()
                .any(|k| k.eq_ignore_ascii_case(kw.as_ref())),
            K::Larger(n) => m.size > u64::from(*n),
            K::Smaller(n) => m.size < u64::from(*n),
            K::Before(d) => day_of(m.internal_date) < date_day(d),
            K::On(d) => day_of(m.internal_date) == date_day(d),
            K::Since(d) => day_of(m.internal_date) >= date_day(d),
            K::Older(secs) => {
                m.internal_date <= chrono::Utc::now().timestamp() - i64::from(secs.get())
            }
            K::Younger(secs) => {
                m.internal_date >= chrono::Utc::now().timestamp() - i64::from(secs.get())
            }
            K::ModSequence { modseq, .. } => m.modseq >= *modseq,
        }
    }
}

/// Runs the probes over every message of the mailbox in one store scan of the summaries
/// (header fields, sent dates and, when a probe needs it, the body text; no parsing). Returns
/// (UID, bits) in UID order, for messages with at least one bit set.
async fn scan(
    store: &store::Store,
    mailbox: store::MailboxId,
    probes: Vec<Probe>,
) -> Result<Vec<(store::Uid, u64)>, store::StoreError> {
    indexer::ensure(store, mailbox).await?;
    let bodies = probes
        .iter()
        .any(|p| matches!(p, Probe::Body(_) | Probe::Text(_)));
    // A BODY-only search need not split every message's header fields.
    let fields = probes
        .iter()
        .any(|p| matches!(p, Probe::Header(..) | Probe::Text(_)));
    store
        .scan_summaries(
            mailbox,
            bodies,
            Box::new(move |row| {
                let headers: Vec<(&str, &str)> = if fields {
                    indexer::header_fields(row.headers).collect()
                } else {
                    Vec::new()
                };
                let body = bodies.then(|| indexer::body_text(row.body));
                probe_bits(&probes, indexer::sent_date(row.keys), &headers, body)
            }),
        )
        .await
}

impl Session {
    /// The messages matching all `criteria`, with their index into the selected view; `Err`
    /// with the text of a NO response when the search cannot be run.
    pub(crate) async fn matching(
        &mut self,
        criteria: &[SearchKey<'_>],
    ) -> Result<Vec<(usize, MessageMeta)>, &'static str> {
        if criteria
            .iter()
            .any(|k| matches!(k, SearchKey::ModSequence { .. }))
        {
            self.condstore = true;
        }
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Vec::new());
        };
        let mut plan = Plan::new(criteria, sel);
        if plan.probes.len() > MAX_PROBES {
            return Err("[LIMIT] Too many text search keys");
        }
        let found = if plan.probes.is_empty() {
            Vec::new()
        } else {
            // The scan owns the probes; evaluation needs only their positions.
            scan(&self.srv.store, sel.id, std::mem::take(&mut plan.probes))
                .await
                .map_err(|e| {
                    tracing::error!("search scan: {e}");
                    "[SERVERBUG] Search failed"
                })?
        };
        let sel = self.selected.as_ref().expect("selected");
        let metas = sel.load_all(&self.srv.store).await.map_err(|e| {
            tracing::error!("search: {e}");
            "[SERVERBUG] Search failed"
        })?;
        // Both lists are in UID order: walk them together. Messages expunged meanwhile match
        // nothing.
        let mut found = found.into_iter().peekable();
        let mut hits = Vec::new();
        for (idx, m) in metas.into_iter().enumerate() {
            let Some(m) = m else { continue };
            while found.next_if(|(uid, _)| *uid < m.uid).is_some() {}
            let bits = found
                .next_if(|(uid, _)| *uid == m.uid)
                .map_or(0, |(_, b)| b);
            let mut eval = Eval {
                plan: &plan,
                probe: 0,
                set: 0,
            };
            if criteria
                .iter()
                .fold(true, |all, k| eval.eval(k, idx, &m, bits) & all)
            {
                hits.push((idx, m));
            }
        }
        Ok(hits)
    }

    pub(crate) async fn handle_search(
        &mut self,
        tag: &str,
        criteria: &[SearchKey<'_>],
        uid: bool,
    ) -> Flow {
        self.sync(false).await;
        if self.selected.is_none() {
            return self.bad(tag, "No mailbox selected");
        }
        let hits = match self.matching(criteria).await {
            Ok(hits) => hits,
            Err(text) => return self.no(tag, text),
        };
        let uids: Vec<u32> = hits.iter().map(|(_, m)| m.uid).collect();
        let ids: Vec<u32> = if uid {
            uids.clone()
        } else {
            hits.iter().map(|(i, _)| *i as u32 + 1).collect()
        };
        let modseq = criteria
            .iter()
            .any(|k| matches!(k, SearchKey::ModSequence { .. }))
            .then(|| hits.iter().map(|(_, m)| m.modseq).max())
            .flatten();
        let ret = self.search_return.take().or_else(|| {
            self.rev2.then(|| crate::extended::SearchReturn {
                all: true,
                ..Default::default()
            })
        });
        match ret {
            None => {
                let mut line = String::from("SEARCH");
                for id in &ids {
                    line.push(' ');
                    line.push_str(&id.to_string());
                }
                if let Some(max) = modseq {
                    // RFC 7162 3.1.5: the highest MODSEQ of the matches.
                    line.push_str(&format!(" (MODSEQ {max})"));
                }
                self.untagged(&line);
            }
            Some(r) => {
                if r.save {
                    // RFC 5182 2.4: with MIN or MAX but neither ALL nor COUNT, only the
                    // messages they name are saved.
                    self.saved = if (r.min || r.max) && !(r.all || r.count) {
                        let mut named = Vec::new();
                        if r.min {
                            named.extend(uids.first().copied());
                        }
                        if r.max {
                            named.extend(uids.last().copied());
                        }
                        named.dedup();
                        named
                    } else {
                        uids
                    };
                }
                if r.min || r.max || r.all || r.count {
                    // RFC 4731 3.1; RFC 9051 7.3.4.
                    let mut line = format!("ESEARCH (TAG \"{tag}\")");
                    if uid {
                        line.push_str(" UID");
                    }
                    if r.min
                        && let Some(v) = ids.first()
                    {
                        line.push_str(&format!(" MIN {v}"));
                    }
                    if r.max
                        && let Some(v) = ids.last()
                    {
                        line.push_str(&format!(" MAX {v}"));
                    }
                    if r.all && !ids.is_empty() {
                        line.push_str(&format!(" ALL {}", compress_uids(&ids)));
                    }
                    if r.count {
                        line.push_str(&format!(" COUNT {}", ids.len()));
                    }
                    if let Some(max) = modseq {
                        line.push_str(&format!(" MODSEQ {max}"));
                    }
                    self.untagged(&line);
                }
            }
        }
        self.finish(
            tag,
            if uid {
                "UID SEARCH completed"
            } else {
                "SEARCH completed"
            },
            false,
        )
        .await
    }
}
