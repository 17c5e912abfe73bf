//! Tests of `storage.rs`: saves, replays, compaction, torn writes.
use super::*;
use berth_model::controller::ControllerState;
use berth_model::placement::{BucketPlacement, PlacementMap};
use berth_model::{Epoch, GroupId};
use stateright::actor::Id;

fn placement(epoch: u64) -> BucketPlacement {
    BucketPlacement {
        epoch: Epoch(epoch),
        group: GroupId(1),
        leader: Id::from(1),
        sync_followers: vec![Id::from(2)],
        async_followers: vec![],
    }
}

fn controller(version: u64) -> Storage {
    Storage::Controller(ControllerState {
        map: PlacementMap {
            version,
            ..PlacementMap::uniform(4, placement(1))
        },
        fencing: Default::default(),
        moving: Default::default(),
        liveness: Default::default(),
    })
}

/// A replica's storage whose bucket `b` is at epoch `epochs[b]`.
fn replica(epochs: &[u64]) -> Storage {
    Storage::Replica(
        epochs
            .iter()
            .enumerate()
            .map(|(bucket, epoch)| {
                (
                    Bucket(bucket as u32),
                    Arc::new(DurableBucket::empty(placement(*epoch))),
                )
            })
            .collect(),
    )
}

/// Goal: what was saved is what a restart finds, through snapshot and
/// log alike; a later save replaces an earlier one.
#[test]
fn saved_state_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, saved) = Store::open(dir.path(), "controller").unwrap();
    assert!(saved.is_none());
    store.save(&controller(1)).unwrap();
    store.save(&controller(2)).unwrap();
    let (_, saved) = Store::open(dir.path(), "controller").unwrap();
    assert_eq!(saved, Some(controller(2)));
}

/// Goal: a replica's log records only the buckets that changed, and
/// replaying it rebuilds the whole state, through a compaction too.
#[test]
fn replica_changes_replay_and_compact() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), "replica 1").unwrap();
    let mut epochs = vec![1; 64];
    store.save(&replica(&epochs)).unwrap();
    let snapshot = fs::metadata(dir.path().join(STATE)).unwrap().len();
    epochs[3] = 2;
    store.save(&replica(&epochs)).unwrap();
    let record = store.log_bytes;
    assert!(
        record * 20 < snapshot,
        "a one-bucket record ({record} bytes) is small next to the snapshot ({snapshot})"
    );
    let (_, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(replica(&epochs)));
    // Enough changes to compact: the state survives it.
    store.min_compaction = 4096;
    for round in 0..20_000u64 {
        epochs[(round % 64) as usize] = round + 3;
        store.save(&replica(&epochs)).unwrap();
        if store.log_bytes == 0 {
            break;
        }
    }
    assert_eq!(store.log_bytes, 0, "compacted");
    assert_eq!(fs::metadata(dir.path().join(LOG)).unwrap().len(), 0);
    epochs[0] = 99;
    store.save(&replica(&epochs)).unwrap();
    let (_, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(replica(&epochs)));
}

/// Goal: a record of a bucket with a long log carries what changed
/// (here one entry), not the log, and replays to the same bucket.
#[test]
fn records_carry_what_changed_not_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), "replica 1").unwrap();
    let mut bucket = DurableBucket::empty(placement(1));
    for _ in 0..10_000 {
        bucket.log.push(berth_model::log::Entry::noop(Epoch(1)));
    }
    let storage = |bucket: &DurableBucket| {
        Storage::Replica(
            [(Bucket(0), Arc::new(bucket.clone()))]
                .into_iter()
                .collect(),
        )
    };
    store.save(&storage(&bucket)).unwrap();
    for _ in 0..3 {
        bucket.log.push(berth_model::log::Entry::noop(Epoch(1)));
        store.save(&storage(&bucket)).unwrap();
    }
    let log = store.log_bytes;
    assert!(log < 300, "three one-entry records take {log} bytes");
    let (_, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(storage(&bucket)));
}

/// Goal: a bucket state of many units and outcomes (shared chunks in
/// memory) is saved and read back whole.
#[test]
fn a_large_bucket_state_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), "replica 1").unwrap();
    let mut bucket = DurableBucket::empty(placement(1));
    for seq in 0..500u32 {
        let unit = berth_model::InventoryUnit::new("T", format!("C{seq}"));
        let status = berth_model::bucket::UnitStatus::Held {
            hold: berth_model::Token { client: 9, seq },
            customer: berth_model::Customer::new("alice"),
        };
        bucket.applied.units.insert(unit, status);
    }
    let storage = Storage::Replica(
        [(Bucket(0), Arc::new(bucket.clone()))]
            .into_iter()
            .collect(),
    );
    store.save(&storage).unwrap();
    store.save(&storage).unwrap();
    let (_, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(storage));
}

/// Goal: a torn write (a crash in the middle of a save) leaves the
/// previous state: a half-written snapshot is ignored, a torn log
/// record is cut off, and saving continues after it.
#[test]
fn a_torn_write_keeps_the_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), "replica 1").unwrap();
    store.save(&replica(&[1, 1])).unwrap();
    store.save(&replica(&[2, 1])).unwrap();
    fs::write(dir.path().join(TEMPORARY), b"\x0acontr").unwrap();
    let mut log = OpenOptions::new()
        .append(true)
        .open(dir.path().join(LOG))
        .unwrap();
    log.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
    drop(log);
    let (mut store, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(replica(&[2, 1])));
    store.save(&replica(&[2, 3])).unwrap();
    let (_, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(replica(&[2, 3])));
}

/// Goal: a change naming only the changed buckets (the runtime's
/// save) ends in the same durable state as saving the whole state:
/// changed, added and dropped buckets, through reopen and compaction;
/// and it needs a whole save first.
#[test]
fn bucket_changes_save_like_the_whole_state() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), "replica 1").unwrap();
    let change = |buckets: &[(u32, Option<u64>)]| {
        StorageChange::Buckets(
            buckets
                .iter()
                .map(|(bucket, epoch)| {
                    let durable = epoch.map(|e| Arc::new(DurableBucket::empty(placement(e))));
                    (Bucket(*bucket), durable)
                })
                .collect(),
        )
    };
    let unused = || unreachable!("no compaction due");
    assert!(store.save_change(change(&[(0, Some(1))]), unused).is_err());
    store.save(&replica(&[1, 1, 1])).unwrap();
    store.save_change(change(&[(1, Some(5))]), unused).unwrap();
    store
        .save_change(change(&[(2, None), (3, Some(7))]), unused)
        .unwrap();
    let mut expected = replica(&[1, 5, 1, 7]);
    if let Storage::Replica(buckets) = &mut expected {
        buckets.remove(&Bucket(2));
    }
    let (mut store, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved.as_ref(), Some(&expected));
    store.save_change(change(&[(0, Some(9))]), unused).unwrap();
    store.min_compaction = 0;
    store.snapshot_bytes = 0;
    if let Storage::Replica(buckets) = &mut expected {
        buckets.insert(Bucket(0), Arc::new(DurableBucket::empty(placement(10))));
    }
    let now = expected.clone();
    store
        .save_change(change(&[(0, Some(10))]), move || now)
        .unwrap();
    assert_eq!(store.log_bytes, 0, "the log rotated for a compaction");
    assert!(dir.path().join(OLD_LOG).exists() || store.compacting.is_none());
    store.finish_compaction(true).unwrap();
    assert!(!dir.path().join(OLD_LOG).exists(), "the old log is gone");
    let (_, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(expected));
}

/// Goal: a crash during a background compaction (the log rotated, the
/// snapshot not yet written) loses nothing: recovery replays the old log,
/// then the new one, makes the result the snapshot and drops the old log.
#[test]
fn an_interrupted_compaction_is_finished_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), "replica 1").unwrap();
    let change = |bucket: u32, epoch: u64| {
        StorageChange::Buckets(vec![(
            Bucket(bucket),
            Some(Arc::new(DurableBucket::empty(placement(epoch)))),
        )])
    };
    let unused = || unreachable!("no compaction due");
    store.save(&replica(&[1, 1])).unwrap();
    store.save_change(change(0, 2), unused).unwrap();
    store.save_change(change(1, 3), unused).unwrap();
    drop(store);
    // The rotation of a compaction, and a record after it; then a crash.
    fs::rename(dir.path().join(LOG), dir.path().join(OLD_LOG)).unwrap();
    let (mut store, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(replica(&[2, 3])));
    assert!(!dir.path().join(OLD_LOG).exists());
    store.save_change(change(0, 4), unused).unwrap();
    drop(store);
    let (_, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(replica(&[4, 3])));
}

/// Goal: records are written into zeros preallocated ahead of them,
/// so a save does not change the file's size (its fsync flushes data
/// only); recovery reads the records and stops at the zeros.
#[test]
fn records_fill_a_preallocated_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), "replica 1").unwrap();
    let size = || fs::metadata(dir.path().join(LOG)).unwrap().len();
    store.save(&replica(&[1, 1])).unwrap();
    store.save(&replica(&[2, 1])).unwrap();
    assert_eq!(size(), PREALLOCATE);
    for epoch in 3..50 {
        store.save(&replica(&[epoch, 1])).unwrap();
    }
    assert_eq!(size(), PREALLOCATE, "saves write into the zeros");
    assert!(store.log_bytes > 0 && store.log_bytes < PREALLOCATE);
    let (mut store, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(replica(&[49, 1])));
    store.save(&replica(&[50, 1])).unwrap();
    let (_, saved) = Store::open(dir.path(), "replica 1").unwrap();
    assert_eq!(saved, Some(replica(&[50, 1])));
}

/// Goal: a damaged snapshot or another member's directory is a clear
/// error, and the file is left untouched.
#[test]
fn foreign_or_damaged_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), "replica 1").unwrap();
    store.save(&controller(1)).unwrap();
    let error = Store::open(dir.path(), "replica 2").err().unwrap();
    assert!(
        format!("{error:#}").contains("belongs to replica 1"),
        "{error:#}"
    );
    fs::write(dir.path().join(STATE), b"not a state").unwrap();
    let error = Store::open(dir.path(), "replica 1").err().unwrap();
    assert!(format!("{error:#}").contains("damaged"), "{error:#}");
    assert_eq!(fs::read(dir.path().join(STATE)).unwrap(), b"not a state");
}
