//! Maps keyed by kernel ids (pids, uids, gids, cgroup ids) with a cheap
//! hash: one 64x64->128 bit multiply folded to 64 bits, instead of the
//! standard library's SipHash. The process table is looked up several
//! times per record (the process and each ancestor), so the hash is on the
//! hot path. Ids are small integers chosen by the kernel; the multiply's
//! low half is a bijection of the key, and folding in the high half mixes
//! every key bit into the bits the table indexes and tags by (a unit test
//! checks that the first 100,000 ids hash apart).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by an integer id, hashed with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A new, empty [`IdMap`].
pub fn id_map<K, V>() -> IdMap<K, V> {
    HashMap::with_hasher(BuildHasherDefault::default())
}

/// Hasher for integer keys: folded multiply by an odd constant.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl IdHasher {
    #[inline]
    fn mix(&mut self, x: u64) {
        let m = u128::from(self.0 ^ x).wrapping_mul(u128::from(K));
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Not used by integer keys; correct for any key all the same.
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.mix(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn distinct_ids_hash_apart_and_maps_work() {
        let b = BuildHasherDefault::<IdHasher>::default();
        let mut seen = std::collections::HashSet::new();
        for pid in 0u32..100_000 {
            assert!(seen.insert(b.hash_one(pid)), "collision at {pid}");
        }
        // the low bits a small table indexes by differ for consecutive ids
        let low: std::collections::HashSet<u64> = (0u32..64).map(|p| b.hash_one(p) & 63).collect();
        assert!(low.len() > 32, "{} distinct buckets of 64", low.len());
        let mut m: IdMap<u32, u32> = id_map();
        for p in 0..1000 {
            m.insert(p, p * 2);
        }
        assert_eq!(m.get(&777), Some(&1554));
        assert_eq!(m.len(), 1000);
        let mut c: IdMap<u64, ()> = id_map();
        c.insert(u64::MAX, ());
        assert!(c.contains_key(&u64::MAX));
    }
}
