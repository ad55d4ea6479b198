//! Byte-class tests on short strings eight bytes at a time ("SWAR": SIMD within a register).
//!
//! Every key and string of every event is looked at more than once (lower-casing keys,
//! matching address field names, escaping the lake line); a test byte by byte costs several
//! branches per byte, these a few operations per eight bytes. Each test asks whether *any*
//! byte is of a class, so the words may overlap: a string of 8 bytes or more ends with the
//! word of its last eight bytes, a shorter one is read as two overlapping halves.

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether `test` finds a byte of its class in some word of `bytes`. `test` returns a word
/// whose high bit is set in each byte of the class (any other bit may be set too).
fn any_byte(bytes: &[u8], test: impl Fn(u64) -> u64) -> bool {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let len = bytes.len();
    let found = |word: u64| test(word) & HIGHS != 0;
    if len >= 8 {
        (0..len / 8).any(|i| found(word(i * 8))) || (len % 8 != 0 && found(word(len - 8)))
    } else if len >= 4 {
        found(u64::from(half(0)) | u64::from(half(len - 4)) << 32)
    } else {
        // One to three bytes, the first repeated to fill the word.
        let mut filled = [bytes.first().copied().unwrap_or(0); 8];
        filled[..len].copy_from_slice(bytes);
        len > 0 && found(u64::from_le_bytes(filled))
    }
}

/// High bits of the bytes of `word` below `n` (exact when no byte has its high bit set; with
/// the classic "has a zero byte" trick it is exact for *whether* any byte is below `n`).
fn below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word
}

/// High bits of the bytes of `word` equal to `b`.
fn equal(word: u64, b: u8) -> u64 {
    below(word ^ (ONES * u64::from(b)), 1)
}

/// High bits of the ASCII bytes of `word` from `lo` to `hi` (a byte of 0x80 or more may set
/// any bit: test for those first).
fn within(word: u64, lo: u8, hi: u8) -> u64 {
    let from = word.wrapping_add(ONES * u64::from(0x80 - lo));
    let past = word.wrapping_add(ONES * u64::from(0x80 - hi - 1));
    from & !past
}

/// Whether some byte is an ASCII capital letter or not ASCII.
pub(crate) fn any_ascii_uppercase_or_non_ascii(bytes: &[u8]) -> bool {
    any_byte(bytes, |word| word | within(word, b'A', b'Z'))
}

/// Whether some byte is not ASCII or is a whitespace control character (tab, line feed,
/// vertical tab, form feed, carriage return: 0x09 to 0x0d).
pub(crate) fn any_non_ascii_or_whitespace_control(bytes: &[u8]) -> bool {
    any_byte(bytes, |word| word | within(word, 0x09, 0x0d))
}

/// Whether some byte is not a lower-case ASCII letter or digit.
pub(crate) fn any_not_lowercase_alphanumeric(bytes: &[u8]) -> bool {
    any_byte(bytes, |word| {
        word | !(within(word, b'a', b'z') | within(word, b'0', b'9'))
    })
}

/// Whether serde_json would escape some byte: a quote, a backslash or a control character
/// below 0x20. Every string of every lake line is tested: sixteen bytes at a time with SSE2
/// (part of every x86-64 processor) for strings that long.
pub(crate) fn any_json_escape(bytes: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() >= 16 {
        return sse2::any_json_escape(bytes);
    }
    any_byte(bytes, |word| {
        below(word, 0x20) | equal(word, b'"') | equal(word, b'\\')
    })
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// [`super::any_json_escape`] for 16 bytes or more: blocks of sixteen, the last one
    /// overlapping the one before.
    pub(super) fn any_json_escape(bytes: &[u8]) -> bool {
        debug_assert!(bytes.len() >= 16);
        let found = |at: usize| {
            let block: &[u8; 16] = bytes[at..at + 16].try_into().expect("16 bytes");
            // SAFETY: SSE2 is in every x86-64 processor; the load reads exactly these 16 bytes
            // (unaligned loads are allowed).
            unsafe {
                let block = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
                let control = _mm_cmpeq_epi8(_mm_min_epu8(block, _mm_set1_epi8(0x1f)), block);
                let quote = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'\\' as i8));
                _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) != 0
            }
        };
        let len = bytes.len();
        (0..len / 16).any(|i| found(i * 16)) || (len % 16 != 0 && found(len - 16))
    }
}

/// Whether `needle` occurs in `haystack`, compared window by window: for the short texts of
/// event fields (names, codes) `str::contains` spends more setting up its searcher than
/// searching.
pub(crate) fn contains_short(haystack: &str, needle: &str) -> bool {
    needle.is_empty()
        || haystack
            .as_bytes()
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
}

/// Where the first quote or backslash is (the end of a JSON string's text, or an escape).
pub fn find_quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        // The lowest bit set is exact: a borrow only sets bits above a byte that matched.
        let hits = (equal(word, b'"') | equal(word, b'\\')) & HIGHS;
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|found| at + found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn each_test_finds_exactly_its_bytes(
            bytes in prop::collection::vec(prop_oneof![
                12 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => Just(b'"'), 1 => Just(b'\\'),
                1 => b'A'..=b'Z', 1 => 0x08u8..=0x0e
            ], 0..70)
        ) {
            prop_assert_eq!(
                any_ascii_uppercase_or_non_ascii(&bytes),
                bytes.iter().any(|b| b.is_ascii_uppercase() || !b.is_ascii())
            );
            prop_assert_eq!(
                any_json_escape(&bytes),
                bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
            );
            prop_assert_eq!(
                find_quote_or_backslash(&bytes),
                bytes.iter().position(|&b| b == b'"' || b == b'\\')
            );
            prop_assert_eq!(
                any_not_lowercase_alphanumeric(&bytes),
                bytes.iter().any(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit()))
            );
            let text = String::from_utf8_lossy(&bytes);
            let tail = text.get(text.len() / 2..).unwrap_or("\\");
            for needle in ["", "A", "\"\\", tail] {
                prop_assert_eq!(contains_short(&text, needle), text.contains(needle));
            }
            prop_assert_eq!(
                any_non_ascii_or_whitespace_control(&bytes),
                bytes.iter().any(|b| !b.is_ascii() || (0x09..=0x0d).contains(b))
            );
        }
    }

    #[test]
    fn edges_of_each_class() {
        for (text, upper, alnum) in [
            ("", false, false),
            ("@", false, true),
            ("[", false, true),
            ("A", true, true),
            ("Z", true, true),
            ("`", false, true),
            ("{", false, true),
            ("az09", false, false),
            ("/", false, true),
            (":", false, true),
            ("abcdefgh_", false, true),
            ("abcdefghZ", true, true),
        ] {
            assert_eq!(
                any_ascii_uppercase_or_non_ascii(text.as_bytes()),
                upper,
                "{text:?}"
            );
            assert_eq!(
                any_not_lowercase_alphanumeric(text.as_bytes()),
                alnum,
                "{text:?}"
            );
        }
    }
}
