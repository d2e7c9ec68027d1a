//! The blob log: large message bodies in append-only segment files beside the database.
//!
//! A body written into SQLite is written twice (WAL, then checkpoint) and in page-sized
//! pieces; a 100 KiB message cost about 50 writes and twice its size in disk traffic. Here a
//! large body is written once, in one piece, to the end of the active segment
//! (`data_dir/blobs/NNNNNNNN.seg`). Its fdatasync runs at the same time as the commit of the
//! transaction that points at it, and "250" waits for both; concurrent writers share
//! fdatasyncs (group sync), as transactions share the WAL's fsync.
//!
//! Because the row may become durable before the record does, each commit also stores a
//! watermark per segment (every record below it is durable, [`Pending::durable_mark`]); after
//! a crash, the records above it are verified against their hashes and the messages of any
//! that did not survive are removed. Their senders never got "250".
//!
//! Record: a 20-byte header (magic, length, the first 8 bytes of the body's SHA-256), then
//! the body. A read checks the header against the database row, so a damaged or reclaimed
//! record is an error, never wrong bytes.
//!
//! Each process appends only to segments it created (the admin CLI may write while the server
//! runs) and holds an exclusive `flock` on each while it appends to it or a record in it waits
//! for its row. Space is reclaimed by [`BlobLog::reclaim`]: ranges no row points at are
//! punched out (`FALLOC_FL_PUNCH_HOLE`) and segments without live records are deleted, never
//! in a segment another process holds, and in our own active segment only below the first
//! record whose row is not committed yet. A crash can leave records no row points at
//! (written, never committed): they are reclaimed the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

const MAGIC: &[u8; 4] = b"PBL1";
/// Record header: magic, body length (u64 LE), the first 8 bytes of the body's SHA-256.
pub(super) const HEADER: u64 = 20;
/// A segment is closed once it reaches this size; the next append starts a new one.
const SEGMENT_MAX: u64 = 1 << 30;
/// Zeros ahead of the append point are written and synced in pieces of this size: small
/// enough that a record's fdatasync never queues behind much of them.
const ZERO_CHUNK: u64 = 256 * 1024;
/// The log counts as idle when no record was synced for this long.
const IDLE: Duration = Duration::from_millis(20);
/// How often the zero filler looks for a new active segment when there is nothing to do.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Where a record is: segment number and the offset of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    pub(super) segment: u32,
    pub(super) offset: u64,
}

/// A segment file this process appends to. Its `flock` is held while the file is open here,
/// that is while it is the active segment or a record in it is still [`Pending`].
struct Segment {
    id: u32,
    file: File,
    writes: Mutex<Writes>,
    /// Group sync: fdatasyncs started and completed (see [`Pending::sync`]).
    started: AtomicU64,
    done: Mutex<u64>,
    /// Every record below this offset is durable.
    durable: AtomicU64,
    /// An fdatasync failed: Linux reports a writeback error once, so a later sync succeeding
    /// proves nothing about earlier records. No record in this segment is durable any more
    /// by our account, and new records go to a new segment.
    failed: std::sync::atomic::AtomicBool,
    /// Wakes the zero filler when the zeros run short, and writers when a fill ends.
    zeros: Condvar,
    /// No longer the active segment (or the log is gone): the zero filler lets go of it.
    retired: std::sync::atomic::AtomicBool,
}

impl Segment {
    /// Marks the segment retired and wakes the zero filler if it waits on it.
    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        // Under the lock the filler's wait checks the flag under, so the wake-up is not lost.
        let _writes = lock(&self.writes);
        self.zeros.notify_all();
    }
}

#[derive(Default)]
struct Writes {
    /// Bytes reserved so far (the next record's offset).
    end: u64,
    /// Records whose bytes are still being written.
    unwritten: BTreeSet<u64>,
    /// Records whose rows are not committed yet (count per offset).
    pending: BTreeMap<u64, usize>,
    /// End of the zeros written (and synced) ahead of the records (see
    /// [`BlobLog::keep_zeros_ahead`]).
    zeroed: u64,
    /// Start of the zeros being written now: no record may be reserved across it.
    filling: Option<u64>,
    /// Record syncs completed (the zero filler goes after each).
    synced: u64,
}

/// The blob log of one data directory.
pub(super) struct BlobLog {
    dir: PathBuf,
    active: Mutex<Option<Arc<Segment>>>,
    /// Read handles by segment number.
    readers: Mutex<HashMap<u32, Arc<File>>>,
    segment_max: u64,
    /// Whether the zero filler runs (it is started once).
    filling_ahead: std::sync::atomic::AtomicBool,
    /// Tests: how long the zero filler waits between claiming a range and writing it, so
    /// that writers that ignored the claim would be overwritten.
    #[cfg(test)]
    fill_pause: Mutex<Duration>,
}

impl Drop for BlobLog {
    fn drop(&mut self) {
        // The zero filler lets go of the active segment (and its lock) now.
        if let Some(segment) = lock(&self.active).as_ref() {
            segment.retire();
        }
    }
}

/// A written record whose row is not committed yet. [`Pending::sync`] makes it durable;
/// dropping it (after the commit, or on failure) lets [`BlobLog::reclaim`] look at its range.
pub(super) struct Pending {
    segment: Arc<Segment>,
    pub(super) location: Location,
}

impl Pending {
    /// Makes the record durable. Concurrent callers share fdatasyncs: a sync that started
    /// after this record was written covers it, so a caller that waited while another synced
    /// usually finds its record covered already.
    pub(super) fn sync(&self) -> io::Result<()> {
        let seg = &self.segment;
        let failed = || io::Error::other("an earlier fdatasync of this blob log segment failed");
        let needed = seg.started.load(Ordering::SeqCst) + 1;
        let mut done = lock(&seg.done);
        if seg.failed.load(Ordering::SeqCst) {
            return Err(failed());
        }
        if *done >= needed {
            return Ok(());
        }
        let this = seg.started.fetch_add(1, Ordering::SeqCst) + 1;
        let covered = {
            let w = lock(&seg.writes);
            w.unwritten.first().copied().unwrap_or(w.end)
        };
        if let Err(e) = seg.file.sync_data() {
            seg.failed.store(true, Ordering::SeqCst);
            return Err(e);
        }
        *done = this;
        seg.durable.fetch_max(covered, Ordering::SeqCst);
        lock(&seg.writes).synced += 1;
        seg.zeros.notify_all();
        Ok(())
    }

    /// (segment, offset) below which the segment's records are known to be durable now: a
    /// watermark to store with the rows, so that recovery checks only the records above it.
    pub(super) fn durable_mark(&self) -> (u32, u64) {
        (self.segment.id, self.segment.durable.load(Ordering::SeqCst))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut w = lock(&self.segment.writes);
        if let Some(n) = w.pending.get_mut(&self.location.offset) {
            *n -= 1;
            if *n == 0 {
                w.pending.remove(&self.location.offset);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.seg"))
}

fn segment_ids(dir: &Path) -> io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl BlobLog {
    /// Opens (creating) the log directory; no segment is created before the first append.
    pub(super) fn open(dir: &Path) -> io::Result<BlobLog> {
        Self::with_segment_max(dir, SEGMENT_MAX)
    }

    pub(super) fn with_segment_max(dir: &Path, segment_max: u64) -> io::Result<BlobLog> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            if let Some(parent) = dir.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(BlobLog {
            dir: dir.to_path_buf(),
            active: Mutex::new(None),
            readers: Mutex::new(HashMap::new()),
            segment_max,
            filling_ahead: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            fill_pause: Mutex::new(Duration::ZERO),
        })
    }

    /// A new segment file, numbered after every existing one and locked for this process.
    fn create_segment(&self) -> io::Result<Segment> {
        // Made and locked under a temporary name, then linked to its number: a reclaim in
        // another process never sees an unlocked new segment (and would delete it as dead).
        let tmp = self.dir.join(format!(
            ".new-{}-{:?}.tmp",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.try_lock().map_err(io::Error::other)?;
        // Numbers only grow (the highest segment file is never deleted, see `reclaim`), so a
        // number never names two segments.
        let mut id = segment_ids(&self.dir)?.last().map_or(1, |l| l + 1);
        let linked = loop {
            match std::fs::hard_link(&tmp, segment_path(&self.dir, id)) {
                Ok(()) => break Ok(()),
                // Another process took this number a moment ago.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => id += 1,
                Err(e) => break Err(e),
            }
        };
        std::fs::remove_file(&tmp)?;
        linked?;
        // The new name must be durable before any record in it is acknowledged.
        File::open(&self.dir)?.sync_all()?;
        Ok(Segment {
            id,
            file,
            writes: Mutex::default(),
            started: AtomicU64::new(0),
            done: Mutex::new(0),
            durable: AtomicU64::new(0),
            failed: std::sync::atomic::AtomicBool::new(false),
            zeros: Condvar::new(),
            retired: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Keeps `bytes` of zeros written and synced ahead of the active segment's end, from a
    /// thread of its own. An fdatasync after an append also writes the file's new size and
    /// block map (here about 300 µs for 100 KiB against 165 µs for an overwrite): records
    /// written over zeros that are already durable cost only their own bytes. The zeros are
    /// written in small pieces, each synced alone, and a record is never reserved across a
    /// piece being written. Zeros left past the last record when the process stops are
    /// punched out by the next start's reclaim.
    pub(super) fn keep_zeros_ahead(self: &Arc<Self>, bytes: u64) -> io::Result<()> {
        // One filler: two would share the one `filling` claim.
        if bytes == 0 || self.filling_ahead.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let log = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("blob-log-zeros".into())
            .spawn(move || fill_zeros(&log, bytes))?;
        Ok(())
    }

    /// See `fill_pause` (none outside tests).
    fn fill_pause(&self) -> Duration {
        #[cfg(test)]
        return *lock(&self.fill_pause);
        #[cfg(not(test))]
        Duration::ZERO
    }

    /// Writes one record (not yet durable: see [`Pending::sync`]). The record belongs to the
    /// caller until the returned [`Pending`] is dropped, which it must be only after the row
    /// that points at the record has committed (or failed to).
    pub(super) fn write(&self, hash: &[u8], body: &[u8]) -> io::Result<Pending> {
        let mut header = Vec::with_capacity(HEADER as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(body.len() as u64).to_le_bytes());
        header.extend_from_slice(&hash[..8]);
        let len = HEADER + body.len() as u64;
        let pending = {
            let mut active = lock(&self.active);
            let full = |s: &Arc<Segment>| {
                let end = lock(&s.writes).end;
                (end > 0 && end + len > self.segment_max) || s.failed.load(Ordering::SeqCst)
            };
            if active.as_ref().is_none_or(full) {
                // The full segment stays locked while records in it are pending.
                let new = Arc::new(self.create_segment()?);
                if let Some(old) = active.replace(new) {
                    old.retire();
                }
            }
            let segment = active.clone().expect("active segment");
            let offset = {
                let mut w = lock(&segment.writes);
                while w.filling.is_some_and(|start| w.end + len > start) {
                    w = segment.zeros.wait(w).unwrap_or_else(|p| p.into_inner());
                }
                let offset = w.end;
                w.end += len;
                w.unwritten.insert(offset);
                *w.pending.entry(offset).or_default() += 1;
                offset
            };
            let location = Location {
                segment: segment.id,
                offset,
            };
            Pending { segment, location }
        };
        let offset = pending.location.offset;
        let written = pending
            .segment
            .file
            .write_all_at(&header, offset)
            .and_then(|()| pending.segment.file.write_all_at(body, offset + HEADER));
        lock(&pending.segment.writes).unwritten.remove(&offset);
        written?;
        Ok(pending)
    }

    /// Writes one record and makes it durable (the two steps of [`BlobLog::write`] and
    /// [`Pending::sync`] in one).
    #[cfg(test)]
    pub(super) fn append(&self, hash: &[u8], body: &[u8]) -> io::Result<Pending> {
        let pending = self.write(hash, body)?;
        pending.sync()?;
        Ok(pending)
    }

    /// Makes every record written so far to segment `id` durable, whichever process wrote
    /// it (page cache is per file, not per descriptor).
    pub(super) fn sync_segment(&self, id: u32) -> io::Result<()> {
        File::open(segment_path(&self.dir, id))?.sync_data()
    }

    fn reader(&self, segment: u32) -> io::Result<Arc<File>> {
        let mut readers = lock(&self.readers);
        if let Some(f) = readers.get(&segment) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(segment_path(&self.dir, segment))?);
        readers.insert(segment, f.clone());
        Ok(f)
    }

    /// Reads the body of the record at `location`, which the database says is `size` bytes
    /// with SHA-256 `hash`.
    pub(super) fn read(&self, location: Location, size: u64, hash: &[u8]) -> io::Result<Vec<u8>> {
        let file = self.reader(location.segment)?;
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, location.offset)?;
        if &header[..4] != MAGIC || header[4..12] != size.to_le_bytes() || header[12..] != hash[..8]
        {
            return Err(invalid(format!(
                "blob log record at {}:{} does not match its row",
                location.segment, location.offset
            )));
        }
        let mut body = vec![0; size as usize];
        file.read_exact_at(&mut body, location.offset + HEADER)?;
        Ok(body)
    }

    /// Whether the record at `location` is whole: its header matches and its body hashes to
    /// `hash` (recovery, for records that may not have been durable at a crash). A record cut
    /// short or damaged is `Ok(false)`; an error that says nothing about the record (no
    /// permission, no file descriptors, EIO) is an error, not a verdict.
    pub(super) fn verify(&self, location: Location, size: u64, hash: &[u8]) -> io::Result<bool> {
        use sha2::{Digest, Sha256};
        match self.read(location, size, hash) {
            Ok(body) => Ok(Sha256::digest(&body).as_slice() == hash),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Frees the space of records no row points at, in the given segments (all with `None`).
    /// `live(segment)` gives the (offset, body size) of every record the database still
    /// points at in that segment, in offset order; it is called after this call has noted the
    /// records pending in the active segment, so rows committed meanwhile are seen one way
    /// or the other. Segments it could not finish are in [`Reclaimed::revisit`].
    pub(super) fn reclaim(
        &self,
        segments: Option<&[u32]>,
        mut live: impl FnMut(u32) -> io::Result<Vec<(u64, u64)>>,
    ) -> io::Result<Reclaimed> {
        // In the active segment only below its first pending record and its end. Other
        // segments of ours with pending records are still locked, so skipped below.
        let active = lock(&self.active).as_ref().map(|s| {
            let w = lock(&s.writes);
            (
                s.id,
                w.pending.keys().next().copied().unwrap_or(w.end),
                w.end,
            )
        });
        let all = segment_ids(&self.dir)?;
        let highest = all.last().copied();
        let ids = segments.map_or(all, <[u32]>::to_vec);
        let mut done = Reclaimed::default();
        for id in ids {
            match self.reclaim_segment(id, active, highest, &mut live) {
                Ok(Some((punched, deleted))) => {
                    done.punched += punched;
                    done.deleted += usize::from(deleted);
                    if active.is_some_and(|(a, bound, end)| a == id && bound < end) {
                        // Records pending above the bound may end up without rows.
                        done.revisit.push(id);
                    }
                }
                Ok(None) => done.revisit.push(id),
                Err(e) => {
                    tracing::warn!("blob log segment {id}: reclaiming failed: {e}");
                    done.revisit.push(id);
                }
            }
        }
        Ok(done)
    }

    /// One segment of [`BlobLog::reclaim`]: (bytes punched, file deleted), or `None` when the
    /// segment is in use elsewhere.
    fn reclaim_segment(
        &self,
        id: u32,
        active: Option<(u32, u64, u64)>,
        highest: Option<u32>,
        live: &mut impl FnMut(u32) -> io::Result<Vec<(u64, u64)>>,
    ) -> io::Result<Option<(u64, bool)>> {
        let path = segment_path(&self.dir, id);
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some((0, false))),
            Err(e) => return Err(e),
        };
        let is_active = active.is_some_and(|(a, ..)| a == id);
        let bound = match active {
            Some((a, bound, _)) if a == id => bound,
            // Nobody appends to it or waits for a commit any more.
            _ if file.try_lock().is_ok() => file.metadata()?.len(),
            // Another process appends to it, or a record of ours in it is pending.
            _ => return Ok(None),
        };
        let records = live(id)?;
        if records.is_empty() && !is_active {
            lock(&self.readers).remove(&id);
            if Some(id) == highest {
                // Kept (empty) so that its number is not given to a new segment.
                file.set_len(0)?;
                return Ok(Some((bound, false)));
            }
            std::fs::remove_file(&path)?;
            return Ok(Some((0, true)));
        }
        let mut punched = 0;
        let mut pos = 0;
        for (offset, size) in records.into_iter().chain([(bound, 0)]) {
            let start = offset.min(bound);
            if start > pos {
                match punch(&file, pos, start - pos) {
                    Ok(()) => punched += start - pos,
                    // A file system without hole punching: dead segments are still deleted.
                    Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                        return Ok(Some((0, false)));
                    }
                    Err(e) => return Err(e),
                }
            }
            pos = pos.max(offset + HEADER + size);
            if offset >= bound {
                break;
            }
        }
        Ok(Some((punched, false)))
    }
}

/// The thread of [`BlobLog::keep_zeros_ahead`]: fills the active segment ahead of its end
/// while the log exists.
fn fill_zeros(log: &Weak<BlobLog>, ahead: u64) {
    let zeros = vec![0u8; ZERO_CHUNK as usize];
    // The filler writes through a file description of its own: Linux reports a writeback
    // error once per description, so an error its fdatasync sees is still reported to the
    // records' next fdatasync, and no record is acknowledged on the strength of a sync whose
    // error went to the filler.
    let mut own: Option<(u32, File)> = None;
    loop {
        let Some((segment, max, dir, pause)) = log.upgrade().map(|l| {
            let active = lock(&l.active).clone();
            (active, l.segment_max, l.dir.clone(), l.fill_pause())
        }) else {
            return;
        };
        let Some(segment) = segment else {
            std::thread::sleep(LOOK_AGAIN);
            continue;
        };
        if own.as_ref().is_none_or(|(id, _)| *id != segment.id) {
            match OpenOptions::new()
                .write(true)
                .open(segment_path(&dir, segment.id))
            {
                Ok(file) => own = Some((segment.id, file)),
                Err(e) => {
                    tracing::warn!("blob log segment {}: opening it failed: {e}", segment.id);
                    own = None;
                    std::thread::sleep(LOOK_AGAIN);
                    continue;
                }
            }
        }
        let Some((_, file)) = &own else { continue };
        let retired = || segment.retired.load(Ordering::SeqCst);
        let (start, stop) = {
            // One piece after each record's sync, while the disk waits for the next message
            // rather than beside a sync that a "250" waits for; any number once the log is idle.
            let w = lock(&segment.writes);
            let seen = w.synced;
            let (mut w, _) = segment
                .zeros
                .wait_timeout_while(w, IDLE, |w| w.synced == seen && !retired())
                .unwrap_or_else(|p| p.into_inner());
            // Overtaken by the writers: start a piece further on, so that the next record
            // need not wait for it.
            let start = if w.zeroed >= w.end {
                w.zeroed
            } else {
                (w.end + ZERO_CHUNK).next_multiple_of(4096)
            };
            let stop = (start + ZERO_CHUNK).min(max);
            if w.zeroed >= (w.end + ahead).min(max)
                || start >= stop
                || segment.failed.load(Ordering::SeqCst)
                || retired()
            {
                // Nothing to do until the next sync, or another segment becomes active.
                let seen = w.synced;
                drop(
                    segment
                        .zeros
                        .wait_timeout_while(w, LOOK_AGAIN, |w| w.synced == seen && !retired())
                        .unwrap_or_else(|p| p.into_inner()),
                );
                continue;
            }
            w.filling = Some(start);
            (start, stop)
        };
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let written = file
            .write_all_at(&zeros[..(stop - start) as usize], start)
            .and_then(|()| file.sync_data());
        let mut w = lock(&segment.writes);
        w.filling = None;
        segment.zeros.notify_all();
        match written {
            Ok(()) => w.zeroed = w.zeroed.max(stop),
            Err(e) => {
                // Nothing the records need: they are written and synced on their own (a
                // writeback error also reaches their description), and records past the
                // zeros simply append. A full disk or a failing one: try again later.
                drop(w);
                tracing::warn!(
                    "blob log segment {}: writing zeros ahead failed: {e}",
                    segment.id
                );
                std::thread::sleep(LOOK_AGAIN);
            }
        }
    }
}

/// What [`BlobLog::reclaim`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reclaimed {
    /// Bytes punched out.
    pub(super) punched: u64,
    /// Segment files deleted.
    pub(super) deleted: usize,
    /// Segments to look at again later: in use elsewhere, failed, or with records still
    /// pending.
    pub(super) revisit: Vec<u32>,
}

/// Deallocates a byte range of a file (reads return zeros; the size stays).
fn punch(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn hash(body: &[u8]) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        Sha256::digest(body).to_vec()
    }

    fn allocated(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let log = BlobLog::open(&dir.path().join("blobs")).unwrap();
        let a = vec![b'a'; 70_000];
        let b = b"second".to_vec();
        let la = log.append(&hash(&a), &a).unwrap().location;
        let lb = log.append(&hash(&b), &b).unwrap().location;
        assert_eq!(
            la,
            Location {
                segment: 1,
                offset: 0
            }
        );
        assert_eq!(lb.offset, HEADER + 70_000);
        assert_eq!(log.read(la, 70_000, &hash(&a)).unwrap(), a);
        assert_eq!(log.read(lb, 6, &hash(&b)).unwrap(), b);
        // A row that does not match the record (wrong size or hash) is an error.
        assert!(log.read(la, 69_999, &hash(&a)).is_err());
        assert!(log.read(lb, 6, &hash(b"other!")).is_err());
        // A new log (a restart) reads them and appends to a new segment.
        drop(log);
        let log = BlobLog::open(&dir.path().join("blobs")).unwrap();
        assert_eq!(log.read(lb, 6, &hash(&b)).unwrap(), b);
        let lc = log.append(&hash(&b), &b).unwrap().location;
        assert_eq!(
            lc,
            Location {
                segment: 2,
                offset: 0
            }
        );
    }

    #[test]
    fn after_a_failed_fdatasync_the_segment_syncs_no_more_and_writes_move_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = BlobLog::open(dir.path()).unwrap();
        let a = log.append(&hash(b"a"), b"a").unwrap();
        let mark = a.durable_mark();
        // As if the kernel had reported a writeback error for this file.
        a.segment.failed.store(true, Ordering::SeqCst);
        let b = log.write(&hash(b"b"), b"b").unwrap();
        assert_eq!(b.location.segment, 2, "a new segment after the failure");
        assert!(a.sync().is_err(), "a failed segment is never durable again");
        assert_eq!(a.durable_mark(), mark, "and its watermark does not move");
        b.sync().unwrap();
    }

    #[test]
    fn concurrent_appends_get_their_own_ranges_and_segments_roll() {
        let dir = tempfile::tempdir().unwrap();
        let log = BlobLog::with_segment_max(dir.path(), 64 * 1024).unwrap();
        let locations = from_threads(4, 20, |t, i| {
            let body = vec![(t * 20 + i) as u8; 5000 + usize::from(i) * 100];
            (log.append(&hash(&body), &body).unwrap().location, body)
        });
        assert_records(&log, &locations);
        let segments: std::collections::BTreeSet<u32> =
            locations.iter().map(|(l, _)| l.segment).collect();
        assert!(segments.len() >= 5, "{segments:?}");
    }

    /// What `threads` threads return from `record(thread, i)` for i in 0..`each`.
    fn from_threads(
        threads: u16,
        each: u16,
        record: impl Fn(u16, u16) -> (Location, Vec<u8>) + Sync,
    ) -> Vec<(Location, Vec<u8>)> {
        let record = &record;
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..threads)
                .map(|t| s.spawn(move || (0..each).map(|i| record(t, i)).collect::<Vec<_>>()))
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        })
    }

    fn assert_records(log: &BlobLog, records: &[(Location, Vec<u8>)]) {
        for (loc, body) in records {
            let read = log.read(*loc, body.len() as u64, &hash(body)).unwrap();
            assert_eq!(&read, body, "{loc:?}");
        }
    }

    /// Waits until the active segment has `bytes` of zeros past its end.
    fn wait_for_zeros(log: &BlobLog, bytes: u64) -> (u32, u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let seg = lock(&log.active).clone().unwrap();
            let w = lock(&seg.writes);
            if w.zeroed >= w.end + bytes {
                return (seg.id, w.end);
            }
            drop(w);
            assert!(std::time::Instant::now() < deadline, "no zeros ahead");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn zeros_ahead_take_the_records_and_a_restart_frees_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(BlobLog::open(dir.path()).unwrap());
        log.keep_zeros_ahead(1 << 20).unwrap();
        // The first record of a segment is ahead of the zeros, which then start a piece
        // further on (not written, the next record will be): the file holds the record and
        // the zeros, not the gap.
        let a = vec![b'a'; 50_000];
        let la = log.append(&hash(&a), &a).unwrap().location;
        let a_end = la.offset + HEADER + 50_000;
        let gap = (a_end + ZERO_CHUNK).next_multiple_of(4096);
        let (id, _) = wait_for_zeros(&log, 1 << 20);
        let path = segment_path(dir.path(), id);
        let blocks = allocated(&path);
        let zeroed = lock(&lock(&log.active).clone().unwrap().writes).zeroed;
        assert!(
            blocks <= a_end.next_multiple_of(4096) + (zeroed - gap) + (64 << 10),
            "{blocks} bytes allocated: record to {a_end}, zeros {gap}..{zeroed}"
        );
        // The second record fills the gap.
        let b = vec![b'b'; (gap - a_end - HEADER) as usize];
        let lb = log.append(&hash(&b), &b).unwrap().location;
        let (_, end) = wait_for_zeros(&log, 1 << 20);
        let (len, blocks) = (std::fs::metadata(&path).unwrap().len(), allocated(&path));
        assert!(len >= end + (1 << 20), "{len}");
        // The next record goes where the last ended, over zeros already written and synced
        // (the filler may add more meanwhile).
        let c = vec![b'c'; 60_000];
        let lc = log.append(&hash(&c), &c).unwrap().location;
        assert_eq!(lc.offset, end);
        assert!(blocks >= lc.offset + HEADER + 60_000);
        for (l, body) in [(la, &a), (lb, &b), (lc, &c)] {
            assert_eq!(&log.read(l, body.len() as u64, &hash(body)).unwrap(), body);
        }
        // Stopped with zeros past the last record: the next start's reclaim punches them.
        drop(log);
        let log = BlobLog::open(dir.path()).unwrap();
        let live = |_| {
            Ok([(la, &a), (lb, &b), (lc, &c)]
                .iter()
                .map(|(l, body)| (l.offset, body.len() as u64))
                .collect())
        };
        // The old log's filler lets go of the segment's lock within moments.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let done = loop {
            let done = log.reclaim(None, live).unwrap();
            if done.revisit.is_empty() || std::time::Instant::now() > deadline {
                break done;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert!(
            done.punched >= len - lc.offset - HEADER - 60_000,
            "{done:?}"
        );
        assert!(allocated(&path) < blocks - (1 << 19), "zeros freed");
        assert_eq!(log.read(lc, 60_000, &hash(&c)).unwrap(), c);
    }

    #[test]
    fn zeros_ahead_never_overwrite_concurrent_records() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(BlobLog::with_segment_max(dir.path(), 2 << 20).unwrap());
        // Zeros one piece ahead, so that writers keep reaching a piece being written; and a
        // pause between the filler's claim and its write, so that a record reserved across
        // the claim would be written first and then overwritten by the zeros.
        *lock(&log.fill_pause) = Duration::from_millis(2);
        log.keep_zeros_ahead(ZERO_CHUNK).unwrap();
        let first = log.append(&hash(b"first"), b"first").unwrap().location;
        wait_for_zeros(&log, ZERO_CHUNK);
        // Mostly unsynced writes, so that records are reserved while zeros are being
        // written; every fifth syncs, which sets the filler going.
        let records = from_threads(4, 200, |t, i| {
            let body = vec![(t * 200 + i) as u8; 4_000 + usize::from(i) * 97];
            let p = log.write(&hash(&body), &body).unwrap();
            if i % 5 == 0 {
                p.sync().unwrap();
            }
            (p.location, body)
        });
        assert_eq!(log.read(first, 5, &hash(b"first")).unwrap(), b"first");
        assert_records(&log, &records);
        let segments: BTreeSet<u32> = records.iter().map(|(l, _)| l.segment).collect();
        assert!(segments.len() >= 3, "{segments:?}");
    }

    #[test]
    fn reclaim_punches_dead_ranges_and_deletes_dead_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = BlobLog::with_segment_max(dir.path(), 300_000).unwrap();
        let bodies: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i + 1; 100_000]).collect();
        let locs: Vec<Location> = bodies
            .iter()
            .map(|b| log.append(&hash(b), b).unwrap().location)
            .collect();
        // Two records per segment: segments 1, 2 and 3 (active).
        assert_eq!(
            locs.iter().map(|l| l.segment).collect::<Vec<_>>(),
            [1, 1, 2, 2, 3, 3]
        );
        let seg1 = segment_path(dir.path(), 1);
        let before = allocated(&seg1);
        // Live: the second record of segment 1, nothing of segment 2, both of segment 3.
        let live = |id: u32| -> io::Result<Vec<(u64, u64)>> {
            Ok(match id {
                1 => vec![(locs[1].offset, 100_000)],
                3 => vec![(locs[4].offset, 100_000), (locs[5].offset, 100_000)],
                _ => vec![],
            })
        };
        let done = log.reclaim(None, live).unwrap();
        assert_eq!((done.deleted, done.revisit.as_slice()), (1, &[][..]));
        assert!(!segment_path(dir.path(), 2).exists());
        assert_eq!(done.punched, HEADER + 100_000);
        assert!(allocated(&seg1) + 90_000 < before, "first record freed");
        assert_eq!(
            log.read(locs[1], 100_000, &hash(&bodies[1])).unwrap(),
            bodies[1]
        );
        assert_eq!(
            log.read(locs[5], 100_000, &hash(&bodies[5])).unwrap(),
            bodies[5]
        );
        // A reclaimed record reads as an error, not as zeros.
        assert!(log.read(locs[0], 100_000, &hash(&bodies[0])).is_err());
    }

    #[test]
    fn reclaim_spares_appends_in_flight_and_other_processes_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = BlobLog::open(dir.path()).unwrap();
        let body = vec![7u8; 50_000];
        let first = log.append(&hash(&body), &body).unwrap().location;
        let pending = log.append(&hash(&body), &body).unwrap();
        let after = log.append(&hash(&body), &body).unwrap().location;
        // Another process (another log on the same directory) appends to its own segment.
        let other = BlobLog::open(dir.path()).unwrap();
        let theirs = other.append(&hash(&body), &body).unwrap();
        assert_eq!(theirs.location.segment, 2);
        // No rows at all: only what lies before the first append in flight may go.
        let done = log.reclaim(None, |_| Ok(vec![])).unwrap();
        assert_eq!((done.punched, done.deleted), (HEADER + 50_000, 0));
        // Ours still has a pending record, theirs is in use: both to be looked at again.
        assert_eq!(done.revisit, [1, 2]);
        assert!(log.read(first, 50_000, &hash(&body)).is_err());
        assert_eq!(
            log.read(pending.location, 50_000, &hash(&body)).unwrap(),
            body
        );
        assert_eq!(log.read(after, 50_000, &hash(&body)).unwrap(), body);
        assert_eq!(
            other.read(theirs.location, 50_000, &hash(&body)).unwrap(),
            body
        );
        // Once the other process is gone, its segment is ours to reclaim.
        drop(theirs);
        drop(other);
        // Their segment is dead now; being the highest-numbered, it is emptied rather than
        // deleted, so that its number is never given to another segment.
        let done = log.reclaim(Some(&[2]), |_| Ok(vec![])).unwrap();
        assert_eq!(done.deleted, 0);
        assert_eq!(
            std::fs::metadata(segment_path(dir.path(), 2))
                .unwrap()
                .len(),
            0
        );
        let next = log_after_restart(dir.path());
        assert_eq!(next, 3);
    }

    /// The segment number a new process's first record gets.
    fn log_after_restart(dir: &Path) -> u32 {
        let log = BlobLog::open(dir).unwrap();
        log.append(&hash(b"x"), b"x").unwrap().location.segment
    }
}
