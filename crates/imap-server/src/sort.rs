//! SORT and THREAD (RFC 5256; DISPLAYFROM/DISPLAYTO from RFC 5957) over the messages a SEARCH
//! matches. Keys come from the message summaries (crate `indexer`); ties fall back to sequence
//! order.

use std::cmp::Ordering;
use std::collections::HashMap;

use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::search::SearchKey;

use crate::session::{Flow, Session};

/// What SORT and THREAD need of one message.
struct Item {
    /// Index into the selected view.
    idx: usize,
    /// The number to report (UID or sequence number).
    id: u32,
    keys: message::SortKeys,
    internal_date: i64,
    size: u64,
}

impl Item {
    /// RFC 5256 2.2: the sent date, or the internal date when there is none.
    fn date(&self) -> i64 {
        self.keys.date.unwrap_or(self.internal_date)
    }
}

fn compare(a: &Item, b: &Item, criteria: &[SortCriterion]) -> Ordering {
    for c in criteria {
        let o = match c.key {
            SortKey::Arrival => a.internal_date.cmp(&b.internal_date),
            SortKey::Cc => a.keys.cc.cmp(&b.keys.cc),
            SortKey::Date => a.date().cmp(&b.date()),
            SortKey::From => a.keys.from.cmp(&b.keys.from),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Subject => a.keys.subject.cmp(&b.keys.subject),
            SortKey::To => a.keys.to.cmp(&b.keys.to),
            SortKey::DisplayFrom => a.keys.display_from.cmp(&b.keys.display_from),
            SortKey::DisplayTo => a.keys.display_to.cmp(&b.keys.display_to),
        };
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.idx.cmp(&b.idx)
}

impl Session {
    /// Matching messages with their sort keys (from the message summaries).
    async fn items(
        &mut self,
        criteria: &[SearchKey<'_>],
        uid: bool,
        want: indexer::KeyFields,
    ) -> Result<Vec<Item>, &'static str> {
        let hits = self.matching(criteria).await?;
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Vec::new());
        };
        let store = &self.srv.store;
        let keys = match indexer::ensure(store, sel.id).await {
            Ok(_) => store.summary_keys(sel.id).await,
            Err(e) => Err(e),
        }
        .map_err(|e| {
            tracing::error!("sort keys: {e}");
            "[SERVERBUG] Sorting failed"
        })?;
        // Both are in UID order: walk them together.
        let mut keys = keys.into_iter().peekable();
        let mut items = Vec::with_capacity(hits.len());
        for (idx, m) in hits {
            while keys.next_if(|(u, _)| *u < m.uid).is_some() {}
            let k = keys
                .next_if(|(u, _)| *u == m.uid)
                .and_then(|(_, k)| k)
                .map(|k| indexer::decode_keys(&k, want))
                .unwrap_or_default();
            items.push(Item {
                idx,
                id: if uid { m.uid } else { idx as u32 + 1 },
                keys: k,
                internal_date: m.internal_date,
                size: m.size,
            });
        }
        Ok(items)
    }

    pub(crate) async fn handle_sort(
        &mut self,
        tag: &str,
        criteria: &[SortCriterion],
        search: &[SearchKey<'_>],
        uid: bool,
    ) -> Flow {
        self.sync(false).await;
        if self.selected.is_none() {
            return self.bad(tag, "No mailbox selected");
        }
        let mut want = indexer::KeyFields::default();
        for c in criteria {
            match c.key {
                SortKey::Cc => want.cc = true,
                SortKey::From => want.from = true,
                SortKey::Subject => want.subject = true,
                SortKey::To => want.to = true,
                SortKey::DisplayFrom => want.display_from = true,
                SortKey::DisplayTo => want.display_to = true,
                SortKey::Arrival | SortKey::Date | SortKey::Size => {}
            }
        }
        let mut items = match self.items(search, uid, want).await {
            Ok(items) => items,
            Err(text) => return self.no(tag, text),
        };
        items.sort_by(|a, b| compare(a, b, criteria));
        let ids: Vec<String> = items.iter().map(|i| i.id.to_string()).collect();
        self.untagged(format!("SORT {}", ids.join(" ")).trim_end());
        self.finish(
            tag,
            if uid {
                "UID SORT completed"
            } else {
                "SORT completed"
            },
            false,
        )
        .await
    }

    pub(crate) async fn handle_thread(
        &mut self,
        tag: &str,
        algorithm: &ThreadingAlgorithm<'_>,
        search: &[SearchKey<'_>],
        uid: bool,
    ) -> Flow {
        self.sync(false).await;
        if self.selected.is_none() {
            return self.bad(tag, "No mailbox selected");
        }
        let want = indexer::KeyFields {
            subject: true,
            threading: matches!(algorithm, ThreadingAlgorithm::References),
            ..Default::default()
        };
        let items = match self.items(search, uid, want).await {
            Ok(items) => items,
            Err(text) => return self.no(tag, text),
        };
        let threads = match algorithm {
            ThreadingAlgorithm::OrderedSubject => ordered_subject(&items),
            ThreadingAlgorithm::References => references(&items),
            ThreadingAlgorithm::Other(_) => return self.bad(tag, "Unknown threading algorithm"),
        };
        // RFC 5256: "THREAD" [SP 1*thread-list]; no space when nothing matched.
        self.untagged(format!("THREAD {threads}").trim_end());
        self.finish(
            tag,
            if uid {
                "UID THREAD completed"
            } else {
                "THREAD completed"
            },
            false,
        )
        .await
    }
}

/// RFC 5256 ORDEREDSUBJECT: threads of equal base subject, ordered by date; the first message
/// is the parent of all the others.
fn ordered_subject(items: &[Item]) -> String {
    let mut sorted: Vec<&Item> = items.iter().collect();
    sorted.sort_by(|a, b| {
        a.keys
            .subject
            .cmp(&b.keys.subject)
            .then(a.date().cmp(&b.date()))
            .then(a.idx.cmp(&b.idx))
    });
    let mut threads: Vec<Vec<&Item>> = Vec::new();
    for it in sorted {
        match threads.last_mut() {
            Some(t) if t[0].keys.subject == it.keys.subject => t.push(it),
            _ => threads.push(vec![it]),
        }
    }
    threads.sort_by(|a, b| a[0].date().cmp(&b[0].date()).then(a[0].idx.cmp(&b[0].idx)));
    let mut out = String::new();
    for t in threads {
        out.push('(');
        out.push_str(&t[0].id.to_string());
        match t.len() {
            1 => {}
            2 => out.push_str(&format!(" {}", t[1].id)),
            _ => {
                out.push(' ');
                for c in &t[1..] {
                    out.push_str(&format!("({})", c.id));
                }
            }
        }
        out.push(')');
    }
    out
}

/// A node of the REFERENCES algorithm: a message, or a dummy standing for a referenced one.
#[derive(Default)]
struct Node {
    item: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// RFC 5256 REFERENCES threading (section 4).
fn references(items: &[Item]) -> String {
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    fn node_for(nodes: &mut Vec<Node>, by_id: &mut HashMap<String, usize>, id: &str) -> usize {
        *by_id.entry(id.to_string()).or_insert_with(|| {
            nodes.push(Node::default());
            nodes.len() - 1
        })
    }
    let is_ancestor = |nodes: &[Node], anc: usize, mut n: usize| -> bool {
        let mut steps = 0;
        loop {
            if n == anc {
                return true;
            }
            match nodes[n].parent {
                Some(p) if steps < 10_000 => {
                    n = p;
                    steps += 1;
                }
                _ => return false,
            }
        }
    };
    let link = |nodes: &mut Vec<Node>, parent: usize, child: usize| {
        if parent == child || is_ancestor(nodes, child, parent) {
            return;
        }
        if let Some(old) = nodes[child].parent {
            nodes[old].children.retain(|c| *c != child);
        }
        nodes[child].parent = Some(parent);
        nodes[parent].children.push(child);
    };
    // Step 1: a node per message-id, messages without one (or with a duplicate) get their own.
    for (i, it) in items.iter().enumerate() {
        let n = match &it.keys.message_id {
            Some(id) if by_id.get(id).is_none_or(|n| nodes[*n].item.is_none()) => {
                node_for(&mut nodes, &mut by_id, id)
            }
            _ => {
                nodes.push(Node::default());
                nodes.len() - 1
            }
        };
        nodes[n].item = Some(i);
        let refs: Vec<usize> = it
            .keys
            .references
            .iter()
            .map(|r| node_for(&mut nodes, &mut by_id, r))
            .collect();
        for w in refs.windows(2) {
            if nodes[w[1]].parent.is_none() {
                link(&mut nodes, w[0], w[1]);
            }
        }
        match refs.last() {
            Some(last) => link(&mut nodes, *last, n),
            None => {
                if let Some(old) = nodes[n].parent.take() {
                    nodes[old].children.retain(|c| *c != n);
                }
            }
        }
    }
    // Step 2-3: roots, then prune dummies.
    let roots: Vec<usize> = (0..nodes.len())
        .filter(|n| nodes[*n].parent.is_none())
        .collect();
    fn prune(nodes: &mut Vec<Node>, list: Vec<usize>, at_root: bool) -> Vec<usize> {
        let mut out = Vec::new();
        for n in list {
            let kids = std::mem::take(&mut nodes[n].children);
            let kids = prune(nodes, kids, false);
            if nodes[n].item.is_none() && (kids.is_empty() || !at_root || kids.len() == 1) {
                // Dummy without a message: drop it, promoting its children.
                for k in &kids {
                    nodes[*k].parent = None;
                }
                out.extend(kids);
            } else {
                for k in &kids {
                    nodes[*k].parent = Some(n);
                }
                nodes[n].children = kids;
                out.push(n);
            }
        }
        out
    }
    let mut roots = prune(&mut nodes, roots, true);
    // Step 4: merge root threads of the same base subject.
    let subject_of = |nodes: &[Node], n: usize| -> Option<(String, bool)> {
        let it = nodes[n]
            .item
            .or_else(|| nodes[n].children.first().and_then(|c| nodes[*c].item))?;
        let k = &items[it].keys;
        (!k.subject.is_empty()).then(|| (k.subject.clone(), k.subject_is_reply))
    };
    let mut table: HashMap<String, usize> = HashMap::new();
    let mut merged: Vec<usize> = Vec::new();
    for r in roots.drain(..) {
        let Some((subject, reply)) = subject_of(&nodes, r) else {
            merged.push(r);
            continue;
        };
        match table.get(&subject).copied() {
            None => {
                table.insert(subject, r);
                merged.push(r);
            }
            Some(t) => {
                let t_dummy = nodes[t].item.is_none();
                let t_reply = subject_of(&nodes, t).is_some_and(|(_, rp)| rp);
                // RFC 5256 4 step 5: under an existing dummy, or as a reply below the original.
                if t_dummy || (reply && !t_reply) {
                    nodes[r].parent = Some(t);
                    nodes[t].children.push(r);
                } else {
                    // Both become children of a new dummy that takes t's place.
                    nodes.push(Node {
                        item: None,
                        parent: None,
                        children: vec![t, r],
                    });
                    let d = nodes.len() - 1;
                    nodes[t].parent = Some(d);
                    nodes[r].parent = Some(d);
                    if let Some(pos) = merged.iter().position(|x| *x == t) {
                        merged[pos] = d;
                    }
                    table.insert(subject, d);
                }
            }
        }
    }
    // Step 5: sort siblings by date (a dummy by its first child), then write.
    fn date_of(nodes: &[Node], items: &[Item], n: usize) -> (i64, usize) {
        match nodes[n].item {
            Some(i) => (items[i].date(), items[i].idx),
            None => nodes[n]
                .children
                .iter()
                .map(|c| date_of(nodes, items, *c))
                .min()
                .unwrap_or((i64::MAX, usize::MAX)),
        }
    }
    fn sort_tree(nodes: &mut Vec<Node>, items: &[Item], list: &mut [usize]) {
        list.sort_by_key(|n| date_of(nodes, items, *n));
        for n in list.iter() {
            let mut kids = std::mem::take(&mut nodes[*n].children);
            sort_tree(nodes, items, &mut kids);
            nodes[*n].children = kids;
        }
    }
    sort_tree(&mut nodes, items, &mut merged);
    fn write(nodes: &[Node], items: &[Item], n: usize, out: &mut String) {
        let kids = &nodes[n].children;
        match nodes[n].item {
            Some(i) => {
                out.push_str(&items[i].id.to_string());
                if kids.len() == 1 {
                    out.push(' ');
                    write(nodes, items, kids[0], out);
                } else if !kids.is_empty() {
                    out.push(' ');
                    for k in kids {
                        out.push('(');
                        write(nodes, items, *k, out);
                        out.push(')');
                    }
                }
            }
            None => {
                for k in kids {
                    out.push('(');
                    write(nodes, items, *k, out);
                    out.push(')');
                }
            }
        }
    }
    let mut out = String::new();
    for r in merged {
        out.push('(');
        write(&nodes, items, r, &mut out);
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(idx: usize, subject: &str, id: &str, refs: &[&str], date: i64) -> Item {
        let (base, reply) = message::base_subject(subject);
        Item {
            idx,
            id: idx as u32 + 1,
            keys: message::SortKeys {
                date: Some(date),
                subject: base,
                subject_is_reply: reply,
                message_id: Some(id.to_string()),
                references: refs.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            internal_date: date,
            size: 0,
        }
    }

    #[test]
    fn references_threads() {
        let items = vec![
            item(0, "hello", "<a@x>", &[], 10),
            item(1, "Re: hello", "<b@x>", &["<a@x>"], 20),
            item(2, "other", "<c@x>", &[], 15),
            item(3, "Re: hello", "<d@x>", &["<a@x>", "<b@x>"], 30),
            item(4, "Re: hello", "<e@x>", &["<a@x>"], 25),
            // parent never seen: a dummy, pruned
            item(5, "lost", "<f@x>", &["<missing@x>"], 5),
        ];
        assert_eq!(references(&items), "(6)(1 (2 4)(5))(3)");
    }

    #[test]
    fn ordered_subject_threads() {
        let items = vec![
            item(0, "hello", "<a@x>", &[], 10),
            item(1, "Re: hello", "<b@x>", &[], 20),
            item(2, "other", "<c@x>", &[], 15),
            item(3, "Fwd: hello", "<d@x>", &[], 30),
        ];
        assert_eq!(ordered_subject(&items), "(1 (2)(4))(3)");
    }
}
