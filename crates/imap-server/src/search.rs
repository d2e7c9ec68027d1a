//! SEARCH (RFC 9051 6.4.4): evaluates search keys over the selected mailbox. Metadata keys
//! (flags, sizes, dates, sequence sets, MODSEQ) use the view; text keys parse the message and
//! match case-insensitive substrings of the decoded headers and body (any charset, via
//! `message::search_text`).

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

fn needs_content(k: &SearchKey<'_>) -> bool {
    use SearchKey as K;
    match k {
        K::Bcc(_)
        | K::Body(_)
        | K::Cc(_)
        | K::From(_)
        | K::Header(..)
        | K::Subject(_)
        | K::Text(_)
        | K::To(_) => true,
        K::SentBefore(_) | K::SentOn(_) | K::SentSince(_) => true,
        K::And(v) => v.as_ref().iter().any(needs_content),
        K::Not(k) => needs_content(k),
        K::Or(a, b) => needs_content(a) || needs_content(b),
        _ => false,
    }
}

/// What a text key looks at, parsed once per message.
struct Content {
    text: message::SearchText,
    sent: Option<i64>,
}

impl Content {
    fn parse(raw: &[u8]) -> Content {
        let text = message::search_text(raw);
        let sent = message::sort_keys(raw).date;
        Content { text, sent }
    }

    fn header(&self, name: &str, needle: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.text
            .headers
            .iter()
            .any(|(n, v)| *n == name && message::fold(v).contains(needle))
    }

    fn any_header(&self, needle: &str) -> bool {
        self.text
            .headers
            .iter()
            .any(|(_, v)| message::fold(v).contains(needle))
    }
}

struct Ctx<'a> {
    sel: &'a Selected,
}

impl Ctx<'_> {
    fn eval(&self, k: &SearchKey<'_>, idx: usize, m: &MessageMeta, c: Option<&Content>) -> bool {
        use SearchKey as K;
        let has = |bit: u32| m.flags.system & bit != 0;
        let text = |a: &dyn AsRef<[u8]>| message::fold(&String::from_utf8_lossy(a.as_ref()));
        let content = |f: &dyn Fn(&Content) -> bool| c.is_some_and(f);
        match k {
            K::And(v) => v.as_ref().iter().all(|k| self.eval(k, idx, m, c)),
            K::Not(k) => !self.eval(k, idx, m, c),
            K::Or(a, b) => self.eval(a, idx, m, c) || self.eval(b, idx, m, c),
            K::All => true,
            K::SequenceSet(set) => self.sel.resolve(set, false).binary_search(&idx).is_ok(),
            K::Uid(set) => self.sel.resolve(set, true).binary_search(&idx).is_ok(),
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
            K::SentBefore(d) => content(&|c| c.sent.is_some_and(|s| day_of(s) < date_day(d))),
            K::SentOn(d) => content(&|c| c.sent.is_some_and(|s| day_of(s) == date_day(d))),
            K::SentSince(d) => content(&|c| c.sent.is_some_and(|s| day_of(s) >= date_day(d))),
            K::From(s) => content(&|c| c.header("from", &text(s))),
            K::To(s) => content(&|c| c.header("to", &text(s))),
            K::Cc(s) => content(&|c| c.header("cc", &text(s))),
            K::Bcc(s) => content(&|c| c.header("bcc", &text(s))),
            K::Subject(s) => content(&|c| c.header("subject", &text(s))),
            K::Header(name, value) => {
                let name = String::from_utf8_lossy(name.as_ref()).into_owned();
                let needle = text(value);
                content(&|c| {
                    // RFC 9051 6.4.4: an empty string matches every message with the field.
                    c.text.headers.iter().any(|(n, v)| {
                        n.eq_ignore_ascii_case(&name) && message::fold(v).contains(&needle)
                    })
                })
            }
            K::Body(s) => content(&|c| message::fold(&c.text.body).contains(&text(s))),
            K::Text(s) => {
                let needle = text(s);
                content(&|c| c.any_header(&needle) || message::fold(&c.text.body).contains(&needle))
            }
        }
    }
}

impl Session {
    /// Indexes (into the selected view) of the messages matching all `criteria`, with each
    /// message's parsed content when `keep_content` (for SORT/THREAD).
    pub(crate) async fn matching(&mut self, criteria: &[SearchKey<'_>]) -> Vec<usize> {
        if criteria
            .iter()
            .any(|k| matches!(k, SearchKey::ModSequence { .. }))
        {
            self.condstore = true;
        }
        let Some(sel) = self.selected.as_ref() else {
            return Vec::new();
        };
        let with_content = criteria.iter().any(needs_content);
        let mut hits = Vec::new();
        let store = self.srv.store.clone();
        for (idx, m) in sel.msgs.iter().enumerate() {
            let content = if with_content {
                match store.read_blob(m.blob).await {
                    Ok(raw) => Some(Content::parse(&raw)),
                    Err(_) => None,
                }
            } else {
                None
            };
            let ctx = Ctx { sel };
            if criteria
                .iter()
                .all(|k| ctx.eval(k, idx, m, content.as_ref()))
            {
                hits.push(idx);
            }
        }
        hits
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
        let hits = self.matching(criteria).await;
        let sel = self.selected.as_ref().expect("selected");
        let uids: Vec<u32> = hits.iter().map(|i| sel.msgs[*i].uid).collect();
        let ids: Vec<u32> = if uid {
            uids.clone()
        } else {
            hits.iter().map(|i| *i as u32 + 1).collect()
        };
        let modseq = criteria
            .iter()
            .any(|k| matches!(k, SearchKey::ModSequence { .. }))
            .then(|| hits.iter().map(|i| sel.msgs[*i].modseq).max())
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
                    self.saved = uids;
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
