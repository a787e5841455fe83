//! Comparing parameter names and values, which are short: a name is 10 to 30 bytes, most values fewer.
//!
//! `==` on strings calls the C library's `memcmp`, whose set-up for lengths it cannot know costs more than the
//! comparison of a short name (and mispredicts often). [`same`] compares eight bytes at a time in line, and
//! [`NameKey`] makes the hash tables of names use it.

use std::hash::{Hash, Hasher};

use crate::CompactString;

/// The eight bytes of `b` from `at`, as one little-endian word.
#[inline(always)]
pub(crate) fn word(b: &[u8], at: usize) -> u64 {
    match b.get(at..at + 8) {
        Some(&[b0, b1, b2, b3, b4, b5, b6, b7]) => u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        _ => 0,
    }
}

/// The bytes of word `w` that equal `needle`, as the high bit of each, plus possibly bytes above (more significant
/// than) a match: the lowest bit set is always exact, and any bit set means a match at or below it.
#[inline(always)]
pub(crate) fn matches(w: u64, needle: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = w ^ (ONES * u64::from(needle));
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Whether `a` and `b` hold the same bytes.
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    if n > 64 {
        return a == b;
    }
    // Whole words, then the last eight bytes (which may overlap the last word compared).
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// A name looked up in a table keyed by [`CompactString`] or `Box<str>`: hashed as a `str` is (so it finds what
/// the key type's own hash stored), compared by [`same`].
#[derive(Clone, Copy)]
pub(crate) struct NameKey<'a>(pub(crate) &'a str);

impl Hash for NameKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl hashbrown::Equivalent<CompactString> for NameKey<'_> {
    fn equivalent(&self, key: &CompactString) -> bool {
        same(self.0.as_bytes(), key.as_bytes())
    }
}

impl hashbrown::Equivalent<Box<str>> for NameKey<'_> {
    fn equivalent(&self, key: &Box<str>) -> bool {
        same(self.0.as_bytes(), key.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_agrees_with_equality() {
        let base: Vec<u8> = (0..80u8).map(|i| b'A' + i % 26).collect();
        for n in 0..80 {
            let a = &base[..n];
            assert!(same(a, a), "{n}");
            assert!(!same(a, &base[..n + 1]), "{n}: lengths differ");
            for flip in 0..n {
                let mut b = a.to_vec();
                b[flip] ^= 0x20;
                assert!(!same(a, &b), "{n}: byte {flip} differs");
            }
        }
    }

    #[test]
    fn a_name_key_finds_what_a_str_stored() {
        let mut table: hashbrown::HashMap<CompactString, u32> = hashbrown::HashMap::default();
        table.insert("Dial_Plan_1_".into(), 1);
        table.insert("Profile_Rule".into(), 2);
        assert_eq!(table.get(&NameKey("Dial_Plan_1_")), Some(&1));
        assert_eq!(table.get(&NameKey("Profile_Rule")), Some(&2));
        assert_eq!(table.get(&NameKey("Profile_Rule_B")), None);
    }
}
