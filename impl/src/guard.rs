//! Staying quiet under attack: every dropped datagram is counted by reason
//! (shown by `berth status`), and warnings about them are rate-limited and
//! never print an untrusted payload — a flood of junk costs a counter
//! increment, not a log line.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, Instant};

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Larger than any datagram berth sends.
    Oversize,
    /// Not berth's format, or a payload that does not decode.
    Undecodable,
    /// Its MAC does not verify under any key this process holds.
    BadMac,
    /// Authentic, but seen before (or sealed before this process started).
    Replay,
    /// Authentic and new, but not something its sender may send here (a
    /// client's member-only message, a bucket outside the cluster, a
    /// datagram addressed to another process).
    Unexpected,
}

impl DropReason {
    const ALL: [DropReason; 5] = [
        DropReason::Oversize,
        DropReason::Undecodable,
        DropReason::BadMac,
        DropReason::Replay,
        DropReason::Unexpected,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::Oversize => "oversize",
            DropReason::Undecodable => "undecodable",
            DropReason::BadMac => "bad MAC",
            DropReason::Replay => "replay",
            DropReason::Unexpected => "unexpected",
        })
    }
}

/// Datagrams dropped since start, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops {
    pub oversize: u64,
    pub undecodable: u64,
    pub bad_mac: u64,
    pub replay: u64,
    pub unexpected: u64,
}

impl Drops {
    fn slot(&mut self, reason: DropReason) -> &mut u64 {
        match reason {
            DropReason::Oversize => &mut self.oversize,
            DropReason::Undecodable => &mut self.undecodable,
            DropReason::BadMac => &mut self.bad_mac,
            DropReason::Replay => &mut self.replay,
            DropReason::Unexpected => &mut self.unexpected,
        }
    }

    pub fn count(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Oversize => self.oversize,
            DropReason::Undecodable => self.undecodable,
            DropReason::BadMac => self.bad_mac,
            DropReason::Replay => self.replay,
            DropReason::Unexpected => self.unexpected,
        }
    }

    pub fn total(&self) -> u64 {
        DropReason::ALL
            .iter()
            .map(|reason| self.count(*reason))
            .sum()
    }
}

impl fmt::Display for Drops {
    /// "3 bad MAC, 1 replay" (only the reasons that occurred).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = DropReason::ALL
            .iter()
            .filter(|reason| self.count(**reason) > 0)
            .map(|reason| format!("{} {reason}", self.count(*reason)))
            .collect();
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Warnings per reason per window, at most.
const WARNINGS: u32 = 3;
const WINDOW: Duration = Duration::from_secs(10);

/// Counts drops and logs a few of each reason per window, then one line
/// saying how many more there were.
#[derive(Debug)]
pub struct DropLog {
    pub drops: Drops,
    window_start: Instant,
    warned: [u32; 5],
    suppressed: [u64; 5],
}

impl Default for DropLog {
    fn default() -> Self {
        DropLog {
            drops: Drops::default(),
            window_start: Instant::now(),
            warned: [0; 5],
            suppressed: [0; 5],
        }
    }
}

impl DropLog {
    /// Counts a drop; logs `what` (a short description of the datagram's
    /// source and kind, never its payload) unless this reason has already
    /// warned enough in this window.
    pub fn drop(&mut self, reason: DropReason, what: impl FnOnce() -> String) {
        *self.drops.slot(reason) += 1;
        let now = Instant::now();
        if now.duration_since(self.window_start) >= WINDOW {
            self.roll(now);
        }
        let index = reason.index();
        if self.warned[index] < WARNINGS {
            self.warned[index] += 1;
            tracing::warn!(%reason, "dropped a datagram: {}", clip(&what()));
        } else {
            self.suppressed[index] += 1;
        }
    }

    /// Starts a new window, saying how many warnings the last one held back.
    fn roll(&mut self, now: Instant) {
        for reason in DropReason::ALL {
            let index = reason.index();
            if self.suppressed[index] > 0 {
                tracing::warn!(
                    %reason,
                    count = self.suppressed[index],
                    total = self.drops.count(reason),
                    "dropped more datagrams (not logged one by one)"
                );
            }
        }
        self.window_start = now;
        self.warned = [0; 5];
        self.suppressed = [0; 5];
    }
}

/// At most 160 characters of `text`.
pub fn clip(text: &str) -> String {
    const MAX: usize = 160;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every drop is counted, only a few are described, and long
    /// descriptions are clipped.
    #[test]
    fn drops_are_counted_and_warnings_bounded() {
        let mut log = DropLog::default();
        for _ in 0..10_000 {
            log.drop(DropReason::BadMac, || "from 127.0.0.1:9".to_owned());
        }
        log.drop(DropReason::Replay, || "again".to_owned());
        assert_eq!(log.drops.bad_mac, 10_000);
        assert_eq!(log.drops.total(), 10_001);
        let bad_mac = DropReason::BadMac.index();
        assert_eq!(log.warned[bad_mac], WARNINGS);
        assert_eq!(log.suppressed[bad_mac], 10_000 - u64::from(WARNINGS));
        assert_eq!(log.drops.to_string(), "10000 bad MAC, 1 replay");
        assert!(clip(&"x".repeat(100_000)).len() < 200);
    }
}
