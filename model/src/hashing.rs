//! Bucket hashing: `hash(trip, cabin) mod B`.
//!
//! Routers in different processes (and on different platforms) must agree on
//! the bucket of a unit, so the hash is a fixed, specified function — FNV-1a
//! over the trip and cabin bytes with a separator, finished with the
//! SplitMix64 mixer so that the low bits used by `mod B` are well spread —
//! never `std`'s randomly keyed hasher.

use crate::types::{Bucket, InventoryUnit};

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Separates trip from cabin so that ("AB", "C") and ("A", "BC") differ.
const FIELD_SEPARATOR: u8 = 0x1f;

/// The stable 64-bit hash of an inventory unit.
pub fn unit_hash(unit: &InventoryUnit) -> u64 {
    let mut hash = FNV_OFFSET_BASIS;
    let bytes = unit
        .trip
        .as_bytes()
        .iter()
        .chain(std::iter::once(&FIELD_SEPARATOR))
        .chain(unit.cabin.as_bytes());
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    split_mix64(hash)
}

fn split_mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The bucket of `unit` among `bucket_count` buckets.
///
/// # Panics
/// If `bucket_count` is zero: a placement map always has at least one bucket.
pub fn bucket_of(unit: &InventoryUnit, bucket_count: u32) -> Bucket {
    assert!(bucket_count > 0, "a placement map has at least one bucket");
    Bucket((unit_hash(unit) % u64::from(bucket_count)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pinned values: if these change, routers of different versions would
    /// disagree about ownership, so a change here is a wire-format break.
    #[test]
    fn hash_is_stable_across_builds() {
        let unit = InventoryUnit::new("BCN-JFK-2026-07-14", "C14");
        assert_eq!(unit_hash(&unit), 0xfff4_9b1a_d67a_e1ad);
        assert_eq!(bucket_of(&unit, 2048), Bucket(429));
        assert_ne!(
            unit_hash(&InventoryUnit::new("AB", "C")),
            unit_hash(&InventoryUnit::new("A", "BC"))
        );
    }

    proptest! {
        #[test]
        fn bucket_is_in_range(trip in ".{0,24}", cabin in ".{0,8}", count in 1u32..5000) {
            let bucket = bucket_of(&InventoryUnit::new(trip, cabin), count);
            prop_assert!(bucket.0 < count);
        }

        /// Goal: hashing spreads a realistic population evenly, so no bucket
        /// is hot by construction. 8192 cabins over 64 buckets expect 128
        /// each; every bucket must get between half and double that.
        #[test]
        fn hash_spreads_units_over_buckets(route in "[A-Z]{3}-[A-Z]{3}", day in 1u32..28) {
            let bucket_count = 64u32;
            let mut counts = vec![0u32; bucket_count as usize];
            for trip_index in 0..32 {
                for cabin in 0..256 {
                    let unit = InventoryUnit::new(
                        format!("{route}-2026-{trip_index:02}-{day:02}"),
                        format!("C{cabin}"),
                    );
                    counts[bucket_of(&unit, bucket_count).0 as usize] += 1;
                }
            }
            let expected = 32 * 256 / bucket_count;
            for count in counts {
                prop_assert!(count >= expected / 2 && count <= expected * 2, "count {count}");
            }
        }
    }
}
