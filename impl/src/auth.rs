//! Who sent a datagram: every datagram berth sends is sealed with a MAC
//! under one of the cluster's keys, and a receiver believes only what it
//! can open. Identity is the key (and the sender id the MAC covers), never
//! the source address: a process that binds a crashed member's port, or
//! forges a member's source address, holds no key and is not believed.
//!
//! Three keys, each 32 random bytes in a file of its own (`DIR/keys/`,
//! owner-only), made by `berth cluster up` or `berth keys`:
//!
//! - `member.key`: the controller, the replicas and the projector. Every
//!   member-to-member message is sealed with it.
//! - `operator.key`: operator commands (`failover`, `move`, `rebalance`)
//!   and everything a client may do.
//! - `client.key`: clients (`hold`, `book`, `confirm`, `read`, `token`,
//!   `status`, `search`, `trips`).
//!
//! A member answers an outsider under the key the request came with, so a
//! client checks its answers with the key it holds; a holder of the client
//! key can therefore forge answers to other clients (see
//! `docs/security.md` for the threat model).
//!
//! The MAC is BLAKE3 in keyed mode (the `blake3` crate): a PRF designed for
//! exactly this use, fast enough to seal every datagram (GB/s on one core),
//! audited, and compared in constant time by `blake3::Hash`'s `Eq`.
//!
//! Header (58 bytes, before the postcard payload, all covered by the MAC):
//! version (1), key kind (1), sender (8), recipient (8), counter (8), tag
//! (32). The recipient stops a datagram meant for one process from being
//! accepted by another; the counter (the sender's clock in nanoseconds,
//! strictly increasing per sender) lets the receiver refuse replays.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes before the payload.
pub const HEADER: usize = 1 + 1 + 8 + 8 + 8 + 32;
/// The header's first byte: this format.
const VERSION: u8 = 0xB1;

/// Which key sealed a datagram, and so what its sender may ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    Member,
    Operator,
    Client,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Member, KeyKind::Operator, KeyKind::Client];

    fn byte(self) -> u8 {
        match self {
            KeyKind::Member => 0,
            KeyKind::Operator => 1,
            KeyKind::Client => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|kind| kind.byte() == byte)
    }

    /// The key's file name in the keys directory.
    pub fn file_name(self) -> &'static str {
        match self {
            KeyKind::Member => "member.key",
            KeyKind::Operator => "operator.key",
            KeyKind::Client => "client.key",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Member => "member",
            KeyKind::Operator => "operator",
            KeyKind::Client => "client",
        })
    }
}

/// A 32-byte MAC key. Its `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Key> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|error| anyhow::anyhow!("no randomness for a key: {error}"))?;
        Ok(Key(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn from_hex(text: &str) -> Option<Key> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
        }
        Some(Key(bytes))
    }
}

/// The keys a process holds (any of the three may be absent).
#[derive(Clone, Debug, Default)]
pub struct Keys {
    keys: [Option<Key>; 3],
}

impl Keys {
    pub fn with(mut self, kind: KeyKind, key: Key) -> Keys {
        self.keys[kind.byte() as usize] = Some(key);
        self
    }

    pub fn get(&self, kind: KeyKind) -> Option<&Key> {
        self.keys[kind.byte() as usize].as_ref()
    }

    /// Creates whichever of the three key files is missing in `dir` (the
    /// directory owner-only, each file owner-only); returns the kinds made.
    pub fn create_missing(dir: &Path) -> Result<Vec<KeyKind>> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the keys directory {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
        let mut made = Vec::new();
        for kind in KeyKind::ALL {
            let path = dir.join(kind.file_name());
            if path.exists() {
                continue;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(file, "{}", Key::generate()?.to_hex())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            made.push(kind);
        }
        Ok(made)
    }

    /// Reads the key files of `kinds` from `dir`; a missing file leaves
    /// that key absent, a file others may read or a malformed one is an
    /// error.
    pub fn load(dir: &Path, kinds: &[KeyKind]) -> Result<Keys> {
        let mut keys = Keys::default();
        for kind in kinds {
            if let Some(key) = read_key(&dir.join(kind.file_name()))? {
                keys = keys.with(*kind, key);
            }
        }
        Ok(keys)
    }

    /// As `load`, but `kind` must be there: says which file is missing and
    /// where it comes from.
    pub fn require(dir: &Path, kind: KeyKind) -> Result<Key> {
        let path = dir.join(kind.file_name());
        match read_key(&path)? {
            Some(key) => Ok(key),
            None => bail!(
                "{} is missing: this command needs the cluster's {kind} key (`berth cluster up` and `berth keys --dir DIR` create DIR/keys; give another directory with --keys)",
                path.display()
            ),
        }
    }
}

/// The key in `path`, `None` if there is no such file.
fn read_key(path: &PathBuf) -> Result<Option<Key>> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} may be read by others (mode {mode:o}): a key must be owner-only (chmod 600)",
            path.display()
        );
    }
    if metadata.len() > 1024 {
        bail!("{} is not a berth key (too long)", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match Key::from_hex(&text) {
        Some(key) => Ok(Some(key)),
        None => bail!(
            "{} is not a berth key (64 hexadecimal digits)",
            path.display()
        ),
    }
}

/// The authenticated part of a datagram's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: KeyKind,
    /// A member's id, or a client process's random id.
    pub sender: u64,
    /// The id of the process it is for.
    pub recipient: u64,
    /// The sender's clock in nanoseconds, strictly increasing per sender.
    pub counter: u64,
}

impl Header {
    fn bytes(&self) -> [u8; HEADER - 32] {
        let mut bytes = [0u8; HEADER - 32];
        bytes[0] = VERSION;
        bytes[1] = self.kind.byte();
        bytes[2..10].copy_from_slice(&self.sender.to_le_bytes());
        bytes[10..18].copy_from_slice(&self.recipient.to_le_bytes());
        bytes[18..26].copy_from_slice(&self.counter.to_le_bytes());
        bytes
    }
}

fn tag(key: &Key, header: &[u8], payload: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(&key.0);
    hasher.update(header);
    hasher.update(payload);
    hasher.finalize()
}

/// `payload` sealed under `key` with `header`.
pub fn seal(key: &Key, header: &Header, payload: &[u8]) -> Vec<u8> {
    let head = header.bytes();
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(&head);
    bytes.extend_from_slice(tag(key, &head, payload).as_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Why a datagram was not opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Too short, another format, or a key kind this process does not
    /// hold: not a datagram for it.
    Malformed,
    /// The MAC does not verify: forged, corrupted, or another cluster's.
    BadMac,
}

/// Opens `bytes` with whichever of `keys` its header names; the header and
/// the payload, or why not. Nothing is allocated.
pub fn open<'a>(keys: &Keys, bytes: &'a [u8]) -> Result<(Header, &'a [u8]), Refusal> {
    if bytes.len() < HEADER || bytes[0] != VERSION {
        return Err(Refusal::Malformed);
    }
    let kind = KeyKind::from_byte(bytes[1]).ok_or(Refusal::Malformed)?;
    let key = keys.get(kind).ok_or(Refusal::BadMac)?;
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let header = Header {
        kind,
        sender: word(2),
        recipient: word(10),
        counter: word(18),
    };
    let mut claimed = [0u8; 32];
    claimed.copy_from_slice(&bytes[26..HEADER]);
    let payload = &bytes[HEADER..];
    // `blake3::Hash` compares in constant time.
    if tag(key, &bytes[..26], payload) != blake3::Hash::from_bytes(claimed) {
        return Err(Refusal::BadMac);
    }
    Ok((header, payload))
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// A sender's identity and counter.
#[derive(Debug)]
pub struct Sender {
    pub kind: KeyKind,
    pub id: u64,
    key: Key,
    counter: u64,
}

impl Sender {
    pub fn new(kind: KeyKind, id: u64, key: Key) -> Sender {
        Sender {
            kind,
            id,
            key,
            counter: 0,
        }
    }

    /// A random id for a client process, far from every member id (members
    /// are small numbers, the projector a packed IPv4 address).
    pub fn client_id() -> u64 {
        fastrand::u64(1 << 56..u64::MAX)
    }

    /// The next counter: the clock, or one past the last if the clock has
    /// not moved (or went back).
    fn next(&mut self) -> u64 {
        self.counter = now_nanos().max(self.counter + 1);
        self.counter
    }

    /// `payload` for `recipient`, under this sender's own key.
    pub fn seal(&mut self, recipient: u64, payload: &[u8]) -> Vec<u8> {
        let header = Header {
            kind: self.kind,
            sender: self.id,
            recipient,
            counter: self.next(),
        };
        seal(&self.key, &header, payload)
    }

    /// `payload` for `recipient` under another kind's `key` (a member
    /// answering an outsider under the key its request came with).
    pub fn seal_as(&mut self, kind: KeyKind, key: &Key, recipient: u64, payload: &[u8]) -> Vec<u8> {
        let header = Header {
            kind,
            sender: self.id,
            recipient,
            counter: self.next(),
        };
        seal(key, &header, payload)
    }
}

/// A process's side of authentication: who it is, the keys it checks
/// datagrams with, and the counters it has seen.
#[derive(Debug)]
pub struct Auth {
    pub sender: Sender,
    pub keys: Keys,
    pub replay: ReplayGuard,
}

impl Auth {
    /// A member (controller, replica, projector) with actor id `id`: it
    /// needs the member key, and checks operator and client datagrams with
    /// the operator and client keys where it has them.
    pub fn member(dir: &Path, id: u64) -> Result<Auth> {
        let member = Keys::require(dir, KeyKind::Member)?;
        let keys = Keys::load(dir, &[KeyKind::Operator, KeyKind::Client])?
            .with(KeyKind::Member, member.clone());
        for kind in [KeyKind::Operator, KeyKind::Client] {
            if keys.get(kind).is_none() {
                tracing::warn!(
                    "no {} in {}: {kind} requests will be refused",
                    kind.file_name(),
                    dir.display()
                );
            }
        }
        Ok(Auth {
            sender: Sender::new(KeyKind::Member, id, member),
            keys,
            replay: ReplayGuard::new(),
        })
    }

    /// A client or an operator: it seals with its `kind`'s key and accepts
    /// only answers sealed with it.
    pub fn outsider(dir: &Path, kind: KeyKind) -> Result<Auth> {
        let key = Keys::require(dir, kind)?;
        Ok(Auth {
            sender: Sender::new(kind, Sender::client_id(), key.clone()),
            keys: Keys::default().with(kind, key),
            replay: ReplayGuard::new(),
        })
    }

    /// Whether this process is a member.
    pub fn is_member(&self) -> bool {
        self.sender.kind == KeyKind::Member
    }
}

/// How many of a sender's most recent counters are remembered: datagrams
/// reordered by up to this many are still accepted.
const RECENT: usize = 64;
/// How many outsiders (clients, operators) are remembered at once; the
/// least recently heard is forgotten first.
const OUTSIDERS: usize = 4096;

/// Refuses replayed datagrams: each (kind, sender)'s counters are accepted
/// once. Anything sealed before this process started is refused too (it
/// cannot be an answer to anything this process sent, and the protocol
/// tolerates loss), so a restart does not reopen old traffic to replay.
#[derive(Debug)]
pub struct ReplayGuard {
    /// Per key kind: counters at or below it are refused (the start time,
    /// raised when an outsider is forgotten).
    floors: [u64; 3],
    senders: HashMap<(KeyKind, u64), Vec<u64>>,
    outsiders: usize,
}

impl ReplayGuard {
    pub fn new() -> ReplayGuard {
        ReplayGuard::starting_at(now_nanos())
    }

    pub fn starting_at(floor: u64) -> ReplayGuard {
        ReplayGuard {
            floors: [floor; 3],
            senders: HashMap::new(),
            outsiders: 0,
        }
    }

    /// Whether `header`'s counter is new for its sender (and records it).
    /// Call only for datagrams whose MAC verified.
    pub fn admit(&mut self, header: &Header) -> bool {
        let floor = self.floors[header.kind.byte() as usize];
        if header.counter <= floor {
            return false;
        }
        let key = (header.kind, header.sender);
        if !self.senders.contains_key(&key) && header.kind != KeyKind::Member {
            if self.outsiders >= OUTSIDERS {
                self.forget_oldest_outsider();
            }
            self.outsiders += 1;
        }
        let recent = self.senders.entry(key).or_default();
        if recent.contains(&header.counter) {
            return false;
        }
        if recent.len() >= RECENT {
            let (oldest_at, oldest) = recent
                .iter()
                .enumerate()
                .min_by_key(|(_, counter)| **counter)
                .map(|(at, counter)| (at, *counter))
                .expect("full");
            if header.counter <= oldest {
                // Older than everything remembered: it may have been seen.
                return false;
            }
            recent.swap_remove(oldest_at);
        }
        recent.push(header.counter);
        true
    }

    /// Forgets the outsider heard from least recently, raising its kind's
    /// floor to its newest counter so that nothing of it can be replayed.
    fn forget_oldest_outsider(&mut self) {
        let oldest = self
            .senders
            .iter()
            .filter(|((kind, _), _)| *kind != KeyKind::Member)
            .map(|(key, recent)| (*key, recent.iter().copied().max().unwrap_or(0)))
            .min_by_key(|(_, newest)| *newest);
        if let Some((key, newest)) = oldest {
            self.senders.remove(&key);
            self.outsiders -= 1;
            let floor = &mut self.floors[key.0.byte() as usize];
            *floor = (*floor).max(newest);
        }
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> (Key, Keys) {
        let key = Key::from_bytes([7; 32]);
        (key.clone(), Keys::default().with(KeyKind::Client, key))
    }

    /// Goal: a sealed datagram opens to its header and payload; any flipped
    /// bit, another key or a truncation is refused.
    #[test]
    fn sealed_datagrams_open_and_tampered_ones_do_not() {
        let (key, keys) = keys();
        let mut sender = Sender::new(KeyKind::Client, 99, key);
        let bytes = sender.seal(3, b"hello");
        let (header, payload) = open(&keys, &bytes).unwrap();
        assert_eq!(payload, b"hello");
        assert_eq!((header.sender, header.recipient), (99, 3));
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&keys, &flipped).is_err(), "bit {bit}");
        }
        for length in 0..bytes.len() {
            assert!(open(&keys, &bytes[..length]).is_err());
        }
        let other = Keys::default().with(KeyKind::Client, Key::from_bytes([8; 32]));
        assert_eq!(open(&other, &bytes), Err(Refusal::BadMac));
        // A kind this process holds no key for.
        let member = Keys::default().with(KeyKind::Member, Key::from_bytes([7; 32]));
        assert_eq!(open(&member, &bytes), Err(Refusal::BadMac));
    }

    /// Goal: counters increase strictly even when the clock does not.
    #[test]
    fn counters_increase() {
        let (key, _) = keys();
        let mut sender = Sender::new(KeyKind::Client, 1, key);
        let mut last = 0;
        for _ in 0..1000 {
            let counter = sender.next();
            assert!(counter > last);
            last = counter;
        }
    }

    fn header(sender: u64, counter: u64) -> Header {
        Header {
            kind: KeyKind::Client,
            sender,
            recipient: 0,
            counter,
        }
    }

    /// Goal: each counter is admitted once, reordering within the window is
    /// tolerated, and anything from before the start is refused.
    #[test]
    fn replays_are_refused() {
        let mut guard = ReplayGuard::starting_at(1000);
        assert!(!guard.admit(&header(1, 999)));
        assert!(!guard.admit(&header(1, 1000)));
        assert!(guard.admit(&header(1, 2000)));
        assert!(!guard.admit(&header(1, 2000)));
        assert!(guard.admit(&header(1, 1500)), "reordered, not replayed");
        assert!(!guard.admit(&header(1, 1500)));
        assert!(guard.admit(&header(2, 2000)), "another sender");
        // Fill the window: the oldest remembered falls out, and everything
        // at or below it is refused from then on.
        for counter in 3000..3000 + RECENT as u64 {
            assert!(guard.admit(&header(1, counter)));
        }
        assert!(!guard.admit(&header(1, 2500)));
        assert!(!guard.admit(&header(1, 3000)));
        assert!(guard.admit(&header(1, 5000)));
    }

    /// Goal: forgetting outsiders (a bounded table) never reopens their
    /// counters to replay.
    #[test]
    fn forgotten_outsiders_cannot_be_replayed() {
        let mut guard = ReplayGuard::starting_at(0);
        for sender in 0..OUTSIDERS as u64 + 10 {
            assert!(guard.admit(&header(sender, 100 + sender)));
        }
        assert!(guard.senders.len() <= OUTSIDERS);
        for sender in 0..10 {
            assert!(!guard.admit(&header(sender, 100 + sender)), "{sender}");
        }
    }

    proptest! {
        /// Goal: whatever order counters arrive in, none is admitted twice.
        #[test]
        fn no_counter_is_admitted_twice(counters in prop::collection::vec(1u64..300, 0..500)) {
            let mut guard = ReplayGuard::starting_at(0);
            let mut admitted = std::collections::BTreeSet::new();
            for counter in counters {
                if guard.admit(&header(5, counter)) {
                    prop_assert!(admitted.insert(counter), "{} twice", counter);
                }
            }
        }
    }

    /// Goal: keys are written owner-only and read back; a key others can
    /// read is refused.
    #[test]
    fn key_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        assert_eq!(Keys::create_missing(&keys_dir).unwrap().len(), 3);
        assert!(Keys::create_missing(&keys_dir).unwrap().is_empty());
        let keys = Keys::load(&keys_dir, &KeyKind::ALL).unwrap();
        assert!(KeyKind::ALL.iter().all(|kind| keys.get(*kind).is_some()));
        assert_ne!(keys.get(KeyKind::Member), keys.get(KeyKind::Client));
        let client = keys_dir.join("client.key");
        std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = Keys::require(&keys_dir, KeyKind::Client).unwrap_err();
        assert!(error.to_string().contains("owner-only"), "{error}");
        std::fs::remove_file(&client).unwrap();
        let error = Keys::require(&keys_dir, KeyKind::Client).unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
    }
}
