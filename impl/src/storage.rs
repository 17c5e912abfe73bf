//! Crash-safe storage of one member's durable state (`Storage`).
//!
//! The state lives in `DIR/state.bin` (postcard). A save writes
//! `state.bin.tmp`,
//! fsyncs it, renames it over `state.bin` and fsyncs the directory: a
//! crash at any point leaves either the previous state or the new one,
//! never a torn mix. The runtime saves once per batch of steps (group
//! commit) and sends that batch's messages only after the save returned.
//!
//! The file records which member wrote it, so a data directory is never
//! silently adopted by another member; a file that does not parse is an
//! error, never overwritten.

use anyhow::{bail, Context, Result};
use berth_model::Storage;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const STATE: &str = "state.bin";
const TEMPORARY: &str = "state.bin.tmp";

/// What `state.bin` holds.
#[derive(Serialize, Deserialize)]
struct StateFile {
    /// Who wrote it, e.g. "replica 3" or "controller".
    member: String,
    storage: Storage,
}

/// One member's data directory.
pub struct Store {
    dir: PathBuf,
    member: String,
}

impl Store {
    /// Opens (creating if needed) `dir` for `member`, and returns the state
    /// saved there, if any.
    pub fn open(dir: &Path, member: &str) -> Result<(Store, Option<Storage>)> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        let path = dir.join(STATE);
        let saved = match fs::read(&path) {
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
                Some(file.storage)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()))
            }
        };
        Ok((
            Store {
                dir: dir.to_path_buf(),
                member: member.to_owned(),
            },
            saved,
        ))
    }

    /// Makes `storage` durable: when this returns, it survives a crash.
    pub fn save(&self, storage: &Storage) -> Result<()> {
        let bytes = postcard::to_stdvec(&StateFile {
            member: self.member.clone(),
            storage: storage.clone(),
        })?;
        let temporary = self.dir.join(TEMPORARY);
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
        fs::rename(&temporary, self.dir.join(STATE))
            .with_context(|| format!("cannot replace the state in {}", self.dir.display()))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot fsync the directory {}", self.dir.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::controller::ControllerState;
    use berth_model::placement::{BucketPlacement, PlacementMap};
    use berth_model::{Epoch, GroupId};
    use stateright::actor::Id;

    fn storage(version: u64) -> Storage {
        let placement = BucketPlacement {
            epoch: Epoch(1),
            group: GroupId(1),
            leader: Id::from(1),
            sync_followers: vec![Id::from(2)],
            async_followers: vec![],
        };
        Storage::Controller(ControllerState {
            map: PlacementMap {
                version,
                ..PlacementMap::uniform(4, placement)
            },
            fencing: Default::default(),
            moving: Default::default(),
            liveness: Default::default(),
        })
    }

    /// Goal: what was saved is what a restart finds; a second save replaces
    /// the first.
    #[test]
    fn saved_state_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, saved) = Store::open(dir.path(), "controller").unwrap();
        assert!(saved.is_none());
        store.save(&storage(1)).unwrap();
        store.save(&storage(2)).unwrap();
        let (_, saved) = Store::open(dir.path(), "controller").unwrap();
        assert_eq!(saved, Some(storage(2)));
    }

    /// Goal: a torn write (a crash while writing the temporary file) leaves
    /// the previous state intact.
    #[test]
    fn a_torn_write_keeps_the_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), "controller").unwrap();
        store.save(&storage(1)).unwrap();
        fs::write(dir.path().join(TEMPORARY), b"\x0acontr").unwrap();
        let (_, saved) = Store::open(dir.path(), "controller").unwrap();
        assert_eq!(saved, Some(storage(1)));
    }

    /// Goal: a damaged state file or another member's directory is a clear
    /// error, and the file is left untouched.
    #[test]
    fn foreign_or_damaged_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), "replica 1").unwrap();
        store.save(&storage(1)).unwrap();
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
}
