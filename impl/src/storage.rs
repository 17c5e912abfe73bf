//! Crash-safe storage of one member's durable state (`Storage`).
//!
//! Two files in the member's directory, both postcard:
//!
//! - `state.bin`, a snapshot: the whole state and the sequence number of
//!   the last change it includes. Replaced atomically: written to
//!   `state.bin.tmp`, fsynced, renamed over `state.bin`, directory fsynced.
//! - `wal.bin`, the changes since: one record per save, each framed by its
//!   length and a CRC-32, written after the last and fsynced
//!   (`fdatasync`). The file is grown ahead of the records in zeroed,
//!   synced segments (`PREALLOCATE`), so that a record's fsync flushes its
//!   data only, not the file's new size: on ext4 that takes a third off
//!   every save's fsync (≈400 → ≈265 µs here), and a write waits for three
//!   saves in a row (leader, sync follower, leader's commit). A replica's
//!   record holds only the buckets that changed (`StorageChange`, told
//!   from what the store remembers of each, `SavedBucket`), each as what
//!   changed in it (`BucketChange`: the entries appended, the truncation
//!   point, the commit, the fold, the placement), so a save costs what
//!   changed, not what is stored nor how long the bucket's history is.
//!
//! When the log outgrows the snapshot, it is compacted. A replica's
//! compaction runs in the background: the log is renamed `wal.old.bin`, a
//! new `wal.bin` takes the next records at once, and another thread writes
//! the state through the last record as the new snapshot, then the old log
//! is deleted; a save never waits for a snapshot of the whole state. (The
//! controller's small state is compacted in line.) Recovery reads the
//! snapshot and replays the records numbered after it — from `wal.old.bin`
//! first if a crash interrupted a compaction, which it then finishes —
//! stopping at the first torn or corrupt record (the tail a crash
//! mid-append leaves), which it cuts off. A crash at any point therefore
//! leaves the last completed save or the one before it,
//! never a torn mix. The runtime saves once per batch of steps (group
//! commit) and sends that batch's messages only after the save returned.
//!
//! The snapshot records which member wrote it, so a data directory is never
//! silently adopted by another member; a snapshot that does not parse is an
//! error, never overwritten.

use anyhow::{bail, Context, Result};
use berth_model::replica::{BucketChange, DurableBucket, ReplicaStorage, SavedBucket};
use berth_model::{Bucket, Storage, StorageChange};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const STATE: &str = "state.bin";
const TEMPORARY: &str = "state.bin.tmp";
const LOG: &str = "wal.bin";
/// The log being compacted: the records a snapshot being written in the
/// background will include; deleted once that snapshot is durable.
const OLD_LOG: &str = "wal.old.bin";
/// The log is compacted into a snapshot once it is larger than this and
/// than twice the snapshot.
const MIN_COMPACTION: u64 = 1 << 20;
/// The log file grows in zeroed segments of this size, ahead of the records
/// (writing and syncing one takes about 1 ms here, once per some hundreds
/// of saves; 4 MB would stall a save for 18 ms).
const PREALLOCATE: u64 = 256 << 10;

/// What `state.bin` holds.
#[derive(Serialize, Deserialize)]
struct StateFile {
    /// Who wrote it, e.g. "replica 3" or "controller".
    member: String,
    /// The last log record this snapshot includes.
    seq: u64,
    storage: Storage,
}

/// One record of `wal.bin`.
#[derive(Serialize, Deserialize)]
struct Record {
    seq: u64,
    change: Change,
}

#[derive(Serialize, Deserialize)]
enum Change {
    /// The whole state (the controller's is small).
    Replace(Storage),
    /// A replica's changed buckets, whole; `None` for a bucket it
    /// dropped (written by earlier versions; still read).
    Buckets(Vec<(Bucket, Option<Arc<DurableBucket>>)>),
    /// A replica's changed buckets, each as what changed in it (the
    /// model's `BucketChange`); `None` for a bucket it dropped.
    Changes(Vec<(Bucket, Option<BucketChange>)>),
}

/// One member's data directory.
pub struct Store {
    dir: PathBuf,
    member: String,
    log: Option<File>,
    log_bytes: u64,
    /// How much of the log file is written (records, then zeros): records
    /// up to this size overwrite zeros and do not change the file's size.
    log_allocated: u64,
    snapshot_bytes: u64,
    seq: u64,
    /// The last durable state, to compute what a whole save changed.
    /// Dropped once a replica saves by change (`save_change`): holding its
    /// buckets would make the replica copy each one it changes next.
    last: Option<Storage>,
    /// A replica's buckets as last saved, as much as `save_change` needs.
    saved: Option<BTreeMap<Bucket, SavedBucket>>,
    /// The log size below which it is never compacted.
    min_compaction: u64,
    /// A snapshot being written by another thread (a replica's
    /// compaction): its size once durable.
    compacting: Option<std::thread::JoinHandle<Result<u64>>>,
}

impl Store {
    /// Opens (creating if needed) `dir` for `member`, and returns the state
    /// saved there, if any.
    pub fn open(dir: &Path, member: &str) -> Result<(Store, Option<Storage>)> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        let path = dir.join(STATE);
        let mut store = Store {
            dir: dir.to_path_buf(),
            member: member.to_owned(),
            log: None,
            log_bytes: 0,
            log_allocated: 0,
            snapshot_bytes: 0,
            seq: 0,
            last: None,
            saved: None,
            min_compaction: MIN_COMPACTION,
            compacting: None,
        };
        match fs::read(&path) {
            Ok(bytes) => {
                let file: StateFile = postcard::from_bytes(&bytes).with_context(|| {
                    format!(
                        "{} is damaged or not a berth state file; it was left as it is",
                        path.display()
                    )
                })?;
                if file.member != member {
                    bail!(
                        "{} belongs to {}, not to {member}: refusing to take it over",
                        dir.display(),
                        file.member
                    );
                }
                store.snapshot_bytes = bytes.len() as u64;
                store.seq = file.seq;
                store.last = Some(file.storage);
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()))
            }
        }
        store.replay()?;
        let saved = store.last.clone();
        store.remember(saved.as_ref());
        Ok((store, saved))
    }

    /// Applies the log's records after the snapshot (those of a
    /// compaction that a crash interrupted first); cuts off a torn tail.
    fn replay(&mut self) -> Result<()> {
        let old = self.dir.join(OLD_LOG);
        let interrupted = old.exists();
        if interrupted {
            // The records a background snapshot was to include: a crash
            // came first, so they are replayed, then made a snapshot.
            let bytes = read_file(&old)?;
            self.replay_records(&bytes, &old)?;
        }
        let path = self.dir.join(LOG);
        let bytes = read_file(&path)?;
        let offset = self.replay_records(&bytes, &path)?;
        if path.exists() {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            file.set_len(offset as u64)?;
            file.sync_all()?;
        }
        self.log_bytes = offset as u64;
        if interrupted {
            if let Some(storage) = self.last.clone() {
                self.write_snapshot(&storage)?;
            }
            fs::remove_file(&old).with_context(|| format!("cannot remove {}", old.display()))?;
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Applies the records of `bytes` (the log at `path`) that follow the
    /// state; returns where they end.
    fn replay_records(&mut self, bytes: &[u8], path: &Path) -> Result<usize> {
        let mut offset = 0;
        while let Some((record, next)) = read_record(bytes, offset) {
            if record.seq > self.seq + 1 {
                break; // not the next save: stale bytes, not a record of ours
            }
            if record.seq > self.seq {
                if self.last.is_none() {
                    bail!(
                        "{} has changes but {} has no snapshot: the directory is damaged; it was left as it is",
                        path.display(),
                        self.dir.join(STATE).display()
                    );
                }
                self.last = Some(apply(self.last.take(), record.change));
                self.seq = record.seq;
            }
            offset = next;
        }
        // Zeros after the records are the preallocated rest of the file.
        if bytes[offset..].iter().any(|byte| *byte != 0) {
            tracing::warn!(
                log = %path.display(),
                kept = offset,
                dropped = bytes.len() - offset,
                "cut off a torn tail of the log (a crash during a save that never completed)"
            );
        }
        Ok(offset)
    }

    /// Makes `change` durable on top of the last save: when this returns,
    /// it survives a crash. A replica's change names its changed buckets,
    /// so this costs what changed, whatever the bucket count; `whole` gives
    /// the whole state when the log is due to be compacted into a snapshot.
    pub fn save_change(
        &mut self,
        change: StorageChange,
        whole: impl FnOnce() -> Storage,
    ) -> Result<()> {
        let changed = match change {
            StorageChange::Whole(storage) => return self.save(&storage),
            StorageChange::Buckets(changed) => changed,
        };
        let Some(saved) = &mut self.saved else {
            bail!("a replica's change needs its state saved whole first");
        };
        let mut record = Vec::new();
        for (bucket, now) in changed {
            let change = match (saved.get(&bucket), &now) {
                (Some(old), Some(now)) => match BucketChange::since(old, now) {
                    Some(change) => Some(change),
                    None => continue,
                },
                (None, Some(now)) => Some(BucketChange::Whole(Arc::clone(now))),
                (Some(_), None) => None,
                (None, None) => continue,
            };
            match &now {
                Some(now) => saved.insert(bucket, SavedBucket::of(now)),
                None => saved.remove(&bucket),
            };
            record.push((bucket, change));
        }
        // From here on changes are told by what `saved` remembers.
        self.last = None;
        if record.is_empty() {
            return Ok(());
        }
        self.seq += 1;
        self.append(&Record {
            seq: self.seq,
            change: Change::Changes(record),
        })?;
        self.finish_compaction(false)?;
        if self.compacting.is_none()
            && self.log_bytes > self.min_compaction
            && self.log_bytes > 2 * self.snapshot_bytes
        {
            self.start_compaction(whole())?;
        }
        Ok(())
    }

    /// Compacts the log in the background: the log so far becomes the old
    /// log and a new one takes the next records at once, while another
    /// thread writes `whole` (the state through the last record) as the
    /// snapshot; once that is durable the old log is deleted. A save
    /// therefore never waits for a snapshot of the whole state (tens of
    /// milliseconds at a few MB), and a crash at any point leaves a
    /// snapshot and the logs after it.
    fn start_compaction(&mut self, whole: Storage) -> Result<()> {
        self.log = None;
        fs::rename(self.dir.join(LOG), self.dir.join(OLD_LOG))
            .with_context(|| format!("cannot rotate the log in {}", self.dir.display()))?;
        self.sync_dir()?;
        self.log_bytes = 0;
        self.log_allocated = 0;
        let (dir, member, seq) = (self.dir.clone(), self.member.clone(), self.seq);
        self.compacting = Some(std::thread::spawn(move || {
            write_state_file(&dir, &member, seq, &whole)
        }));
        Ok(())
    }

    /// Finishes a background compaction that is done (or, with `wait`,
    /// waits for it): deletes the old log.
    fn finish_compaction(&mut self, wait: bool) -> Result<()> {
        if !wait && !self.compacting.as_ref().is_some_and(|c| c.is_finished()) {
            return Ok(());
        }
        let Some(compacting) = self.compacting.take() else {
            return Ok(());
        };
        let bytes = compacting
            .join()
            .map_err(|_| anyhow::anyhow!("the snapshot thread panicked"))??;
        self.snapshot_bytes = bytes;
        let old = self.dir.join(OLD_LOG);
        fs::remove_file(&old).with_context(|| format!("cannot remove {}", old.display()))?;
        self.sync_dir()
    }

    /// Remembers what `save_change` needs of a replica's state just saved.
    fn remember(&mut self, storage: Option<&Storage>) {
        self.saved = match storage {
            Some(Storage::Replica(buckets)) => Some(
                buckets
                    .iter()
                    .map(|(bucket, durable)| (*bucket, SavedBucket::of(durable)))
                    .collect(),
            ),
            _ => None,
        };
    }

    /// Whether a state was saved (or recovered) to save changes on top of.
    pub fn has_saved(&self) -> bool {
        self.last.is_some() || self.saved.is_some()
    }

    /// Makes `storage` durable: when this returns, it survives a crash.
    pub fn save(&mut self, storage: &Storage) -> Result<()> {
        let compact = self.last.is_none()
            || (self.log_bytes > self.min_compaction && self.log_bytes > 2 * self.snapshot_bytes);
        self.seq += 1;
        if compact {
            self.write_snapshot(storage)?;
        } else {
            let change = match (&self.last, storage) {
                (Some(Storage::Replica(before)), Storage::Replica(after)) => {
                    Change::Changes(changed_buckets(before, after))
                }
                _ => Change::Replace(storage.clone()),
            };
            self.append(&Record {
                seq: self.seq,
                change,
            })?;
        }
        self.last = Some(storage.clone());
        self.remember(Some(storage));
        Ok(())
    }

    fn write_snapshot(&mut self, storage: &Storage) -> Result<()> {
        self.finish_compaction(true)?;
        let bytes = write_state_file(&self.dir, &self.member, self.seq, storage)?;
        // The snapshot includes every record so far: the log may be emptied
        // (a crash before this leaves records the snapshot's number skips).
        let log = self.log_file()?;
        log.set_len(0)?;
        log.sync_all()?;
        self.log_bytes = 0;
        self.log_allocated = 0;
        self.snapshot_bytes = bytes;
        Ok(())
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        let payload = postcard::to_stdvec(record)?;
        let mut framed = Vec::with_capacity(payload.len() + 8);
        framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        framed.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        framed.extend_from_slice(&payload);
        let end = self.log_bytes + framed.len() as u64;
        if end > self.log_allocated {
            self.preallocate(end)?;
        }
        let at = self.log_bytes;
        let log = self.log_file()?;
        log.seek(SeekFrom::Start(at))?;
        log.write_all(&framed)?;
        log.sync_data().context("cannot fsync the log")?;
        self.log_bytes = end;
        Ok(())
    }

    /// Grows the log file with zeros, durably, to hold at least `end`
    /// bytes of records (in whole `PREALLOCATE` segments past the records).
    fn preallocate(&mut self, end: u64) -> Result<()> {
        let target = end.div_ceil(PREALLOCATE).max(1) * PREALLOCATE;
        let from = self.log_bytes;
        let log = self.log_file()?;
        log.seek(SeekFrom::Start(from))?;
        let zeros = vec![0u8; 1 << 16];
        let mut at = from;
        while at < target {
            let chunk = (target - at).min(zeros.len() as u64) as usize;
            log.write_all(&zeros[..chunk])?;
            at += chunk as u64;
        }
        log.sync_all().context("cannot fsync the log")?;
        self.log_allocated = target;
        Ok(())
    }

    /// The log, opened (and created, durably) on first use.
    fn log_file(&mut self) -> Result<&mut File> {
        if self.log.is_none() {
            let path = self.dir.join(LOG);
            let existed = path.exists();
            let file = OpenOptions::new()
                .create(true)
                .append(false)
                .write(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            if !existed {
                self.sync_dir()?;
            }
            self.log = Some(file);
        }
        Ok(self.log.as_mut().expect("just opened"))
    }

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot fsync the directory {}", self.dir.display()))
    }
}

/// Writes `storage` as `dir`'s snapshot through record `seq`, atomically
/// (a temporary file, fsync, rename, directory fsync); returns its size.
fn write_state_file(dir: &Path, member: &str, seq: u64, storage: &Storage) -> Result<u64> {
    let bytes = postcard::to_stdvec(&StateFile {
        member: member.to_owned(),
        seq,
        storage: storage.clone(),
    })?;
    let temporary = dir.join(TEMPORARY);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(&bytes)?;
    file.sync_all()
        .with_context(|| format!("cannot fsync {}", temporary.display()))?;
    drop(file);
    fs::rename(&temporary, dir.join(STATE))
        .with_context(|| format!("cannot replace the state in {}", dir.display()))?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot fsync the directory {}", dir.display()))?;
    Ok(bytes.len() as u64)
}

/// A file's bytes; none if it does not exist.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The record starting at `offset`, and where the next one starts; `None`
/// at the end or at a torn or corrupt record.
fn read_record(bytes: &[u8], offset: usize) -> Option<(Record, usize)> {
    let header = bytes.get(offset..offset + 8)?;
    let length = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let payload = bytes.get(offset + 8..offset + 8 + length)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let record = postcard::from_bytes(payload).ok()?;
    Some((record, offset + 8 + length))
}

/// What changed in each bucket of `after` since `before`, and the buckets
/// dropped.
fn changed_buckets(
    before: &ReplicaStorage,
    after: &ReplicaStorage,
) -> Vec<(Bucket, Option<BucketChange>)> {
    let mut changed: Vec<_> = after
        .iter()
        .filter_map(|(bucket, durable)| {
            let change = match before.get(bucket) {
                Some(old) if Arc::ptr_eq(old, durable) => None,
                Some(old) => BucketChange::between(old, durable),
                None => Some(BucketChange::Whole(Arc::clone(durable))),
            };
            change.map(|change| (*bucket, Some(change)))
        })
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|bucket| !after.contains_key(bucket))
            .map(|bucket| (*bucket, None)),
    );
    changed
}

fn apply(state: Option<Storage>, change: Change) -> Storage {
    match (state, change) {
        (_, Change::Replace(storage)) => storage,
        (Some(Storage::Replica(mut buckets)), Change::Buckets(changed)) => {
            for (bucket, durable) in changed {
                match durable {
                    Some(durable) => {
                        buckets.insert(bucket, durable);
                    }
                    None => {
                        buckets.remove(&bucket);
                    }
                }
            }
            Storage::Replica(buckets)
        }
        (Some(Storage::Replica(mut buckets)), Change::Changes(changed)) => {
            for (bucket, change) in changed {
                match change.and_then(|change| change.apply(buckets.get(&bucket))) {
                    Some(durable) => {
                        buckets.insert(bucket, durable);
                    }
                    None => {
                        buckets.remove(&bucket);
                    }
                }
            }
            Storage::Replica(buckets)
        }
        (state, Change::Buckets(_) | Change::Changes(_)) => {
            // A replica's change on a controller's state cannot be written
            // by this store; keep the state as it is.
            state.expect("replay checks for a snapshot first")
        }
    }
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
