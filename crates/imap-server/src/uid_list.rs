//! The sequence-number → UID map of a selected mailbox, as runs of consecutive UIDs.
//!
//! This is all a session keeps per message (flags, sizes and the rest are read from the store
//! per command), so an idle session on a 10,000-message mailbox costs a few bytes per run of
//! UIDs instead of a copy of the message list. Mailboxes are mostly runs: UIDs are given out
//! in order and only expunges cut holes.

use store::Uid;

/// Ascending UIDs, numbered 0.. (sequence number - 1).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct UidList {
    /// Per run: its first UID and the index one past its last message. A run's length is its
    /// end minus the previous run's end.
    runs: Vec<Run>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: Uid,
    end: u32,
}

impl UidList {
    /// From ascending UIDs.
    pub(crate) fn from_sorted(uids: impl IntoIterator<Item = Uid>) -> UidList {
        let mut list = UidList::default();
        for uid in uids {
            list.push(uid);
        }
        list
    }

    pub(crate) fn len(&self) -> usize {
        self.runs.last().map_or(0, |r| r.end as usize)
    }

    fn start(&self, run: usize) -> u32 {
        if run == 0 { 0 } else { self.runs[run - 1].end }
    }

    /// The UID at `index`, if there is one.
    pub(crate) fn get(&self, index: usize) -> Option<Uid> {
        let index = u32::try_from(index).ok()?;
        let run = self.runs.partition_point(|r| r.end <= index);
        let r = self.runs.get(run)?;
        Some(r.first + (index - self.start(run)))
    }

    pub(crate) fn last(&self) -> Option<Uid> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// The index of `uid`, if it is in the list.
    pub(crate) fn index_of(&self, uid: Uid) -> Option<usize> {
        let run = self
            .runs
            .partition_point(|r| r.first <= uid)
            .checked_sub(1)?;
        let offset = uid - self.runs[run].first;
        let start = self.start(run);
        (offset < self.runs[run].end - start).then_some((start + offset) as usize)
    }

    /// How many UIDs are below `uid` (the index `uid` has or would have).
    pub(crate) fn count_below(&self, uid: Uid) -> usize {
        let run = self.runs.partition_point(|r| r.first < uid);
        let Some(prev) = run.checked_sub(1) else {
            return 0;
        };
        let start = self.start(prev);
        let len = self.runs[prev].end - start;
        (start + (uid - self.runs[prev].first).min(len)) as usize
    }

    /// Appends a UID above every UID in the list (a new message).
    pub(crate) fn push(&mut self, uid: Uid) {
        debug_assert!(self.last().is_none_or(|last| uid > last));
        let len = self.len() as u32;
        if self
            .last()
            .is_some_and(|last| last.checked_add(1) == Some(uid))
        {
            if let Some(r) = self.runs.last_mut() {
                r.end = len + 1;
            }
        } else {
            self.runs.push(Run {
                first: uid,
                end: len + 1,
            });
        }
    }

    /// Removes `uid`; returns the index it had.
    pub(crate) fn remove(&mut self, uid: Uid) -> Option<usize> {
        let index = self.index_of(uid)?;
        let run = self.runs.partition_point(|r| r.first <= uid) - 1;
        let start = self.start(run);
        let Run { first, end } = self.runs[run];
        let last = first + (end - start) - 1;
        match (uid == first, uid == last) {
            (true, true) => {
                self.runs.remove(run);
            }
            (true, false) => self.runs[run].first = uid + 1,
            (false, true) => {}
            (false, false) => {
                // Split: [first, uid) stays, (uid, last] follows.
                self.runs[run].end = index as u32;
                self.runs.insert(
                    run + 1,
                    Run {
                        first: uid + 1,
                        end,
                    },
                );
            }
        }
        // Every run from here on ends one message earlier.
        let from = if uid == first || uid == last {
            run
        } else {
            run + 1
        };
        for r in &mut self.runs[from..] {
            r.end -= 1;
        }
        Some(index)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Uid> + '_ {
        self.runs
            .iter()
            .enumerate()
            .flat_map(|(i, r)| (0..r.end - self.start(i)).map(move |k| r.first + k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(list: &UidList, model: &[Uid]) {
        assert_eq!(list.len(), model.len());
        assert_eq!(list.iter().collect::<Vec<_>>(), model);
        for (i, uid) in model.iter().enumerate() {
            assert_eq!(list.get(i), Some(*uid));
            assert_eq!(list.index_of(*uid), Some(i));
        }
        assert_eq!(list.get(model.len()), None);
        let top = model.last().copied().unwrap_or(0) + 3;
        for uid in 0..top {
            assert_eq!(list.count_below(uid), model.partition_point(|u| *u < uid));
            assert_eq!(list.index_of(uid), model.binary_search(&uid).ok());
        }
        assert_eq!(list.last(), model.last().copied());
    }

    #[test]
    fn runs_follow_a_model_through_pushes_and_removals() {
        let mut model: Vec<Uid> = (1..=20).chain(25..=30).chain([40, 42]).collect();
        let mut list = UidList::from_sorted(model.iter().copied());
        assert_eq!(list.runs.len(), 4);
        check(&list, &model);
        // First, last, middle of a run, a whole one-message run, and absent UIDs.
        for uid in [1, 20, 10, 40, 25, 7, 42, 99, 0] {
            let want = model.binary_search(&uid).ok();
            if let Some(i) = want {
                model.remove(i);
            }
            assert_eq!(list.remove(uid), want, "removing {uid}");
            check(&list, &model);
        }
        for uid in [43, 44, 50] {
            list.push(uid);
            model.push(uid);
            check(&list, &model);
        }
        while let Some(&uid) = model.first() {
            model.remove(0);
            list.remove(uid);
            check(&list, &model);
        }
        assert_eq!(list.len(), 0);
        assert!(list.runs.is_empty());
    }

    #[test]
    fn a_dense_mailbox_is_one_run() {
        let list = UidList::from_sorted(1..=10_000);
        assert_eq!(list.runs.len(), 1);
        assert_eq!(list.get(9_999), Some(10_000));
        assert_eq!(list.index_of(5_000), Some(4_999));
    }
}
