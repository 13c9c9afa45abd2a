//! Decoding the 64 lowercase hex digits of a SHA-256 (`hash`, `prev_hash`,
//! key ids). Verify decodes two per record; done byte by byte that showed
//! up in its profile, so on x86_64 SSE2 (the x86_64 baseline: nothing to
//! detect at run time) checks and decodes sixteen digits per step. The
//! portable path works on eight digits in a u64 and is the reference the
//! unit tests hold the SSE2 path to.

use crate::merkle::Hash;

/// The 32 bytes that 64 lowercase hex digits spell; `None` for any other
/// length or any byte that is not `0`–`9` or `a`–`f`.
pub fn parse_hex32(s: &[u8]) -> Option<Hash> {
    let s: &[u8; 64] = s.try_into().ok()?;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        // SAFETY: SSE2 is enabled for this build (the cfg above checks it),
        // which is all `sse2_hex32` needs.
        unsafe { sse2_hex32(s) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        swar_hex32(s)
    }
}

/// Eight digits at a time in a u64.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn swar_hex32(s: &[u8; 64]) -> Option<Hash> {
    let mut out = [0u8; 32];
    for (o, digits) in out.chunks_exact_mut(4).zip(s.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(digits);
        o.copy_from_slice(&hex8(u64::from_le_bytes(w))?);
    }
    Some(out)
}

/// Eight lowercase hex digits (little-endian in `x`: the first digit is the
/// lowest byte) to four bytes. Each test below works on every byte at once
/// and never carries from one byte into the next.
fn hex8(x: u64) -> Option<[u8; 4]> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    // A byte's high bit set in the result when the byte is zero (exact).
    let zero = |v: u64| !(((v & !HIGH) + !HIGH) | v) & HIGH;
    let hi = x & (ONES * 0xf0);
    let lo = x & (ONES * 0x0f);
    let digit = zero(hi ^ (ONES * 0x30)) & !(lo + ONES * 0x76); // '0'..='9'
    let letter = zero(hi ^ (ONES * 0x60)) & (lo + ONES * 0x7f) & !(lo + ONES * 0x79); // 'a'..='f'
    if (digit | letter) & HIGH != HIGH {
        return None;
    }
    // A letter's low nibble is 1..=6 for 10..=15.
    let nibbles = lo + ((x >> 6) & ONES) * 9;
    // Byte 2k of `pairs` is digit 2k's nibble over digit 2k+1's.
    let pairs = (nibbles << 4) | (nibbles >> 8);
    let b = pairs.to_le_bytes();
    Some([b[0], b[2], b[4], b[6]])
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
fn sse2_hex32(s: &[u8; 64]) -> Option<Hash> {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_packus_epi16, _mm_set1_epi8, _mm_set1_epi16, _mm_slli_epi16,
        _mm_srli_epi16, _mm_storeu_si128, _mm_sub_epi8,
    };
    // Sixteen digits to their nibbles, and whether all sixteen were digits.
    // Signed compares: bytes >= 0x80 are negative and fail both ranges.
    let nibbles = |v: __m128i| {
        let digit = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(b'0' as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(b'9' as i8 + 1)),
        );
        let letter = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(b'a' as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(b'f' as i8 + 1)),
        );
        let ok = _mm_movemask_epi8(_mm_or_si128(digit, letter)) == 0xffff;
        // '0' is 48, 'a' is 97 = 10 + 48 + 39.
        let n = _mm_sub_epi8(
            _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8)),
            _mm_and_si128(letter, _mm_set1_epi8(39)),
        );
        (n, ok)
    };
    // In each 16-bit lane the first digit's nibble is the low byte: the
    // pair's byte is that nibble shifted up, or'ed with the second's.
    let pairs = |n: __m128i| {
        _mm_or_si128(
            _mm_and_si128(_mm_slli_epi16(n, 4), _mm_set1_epi16(0x00f0)),
            _mm_srli_epi16(n, 8),
        )
    };
    let mut out = [0u8; 32];
    let mut all = true;
    for (half, digits) in s.chunks_exact(32).enumerate() {
        // SAFETY: `digits` is 32 bytes long: both unaligned 16-byte loads
        // are inside it.
        let (a, b) = unsafe {
            (
                _mm_loadu_si128(digits.as_ptr().cast()),
                _mm_loadu_si128(digits.as_ptr().add(16).cast()),
            )
        };
        let ((na, oka), (nb, okb)) = (nibbles(a), nibbles(b));
        all &= oka & okb;
        // Every lane is at most 0xff, so the saturating pack is exact.
        let bytes = _mm_packus_epi16(pairs(na), pairs(nb));
        // SAFETY: `out[half * 16..]` has 16 bytes for the unaligned store.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(half * 16).cast(), bytes) };
    }
    all.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8; 64] = b"0123456789abcdef0123456789abcdeffedcba9876543210ffeeddccbbaa9900";

    #[test]
    fn accepts_exactly_lowercase_hex() {
        assert_eq!(
            parse_hex32(GOOD).map(hex::encode),
            Some(String::from_utf8(GOOD.to_vec()).unwrap())
        );
        // Every byte value at every position, against the portable path
        // and against the definition.
        for at in 0..64 {
            for v in 0..=255u8 {
                let mut s = *GOOD;
                s[at] = v;
                let ok = v.is_ascii_digit() || (b'a'..=b'f').contains(&v);
                let got = parse_hex32(&s);
                assert_eq!(got, swar_hex32(&s), "byte {v:#x} at {at}");
                assert_eq!(got.is_some(), ok, "byte {v:#x} at {at}");
                if let Some(h) = got {
                    assert_eq!(hex::encode(h).as_bytes(), &s[..]);
                }
            }
        }
        assert!(parse_hex32(&GOOD[1..]).is_none());
        assert!(parse_hex32(&[b'0'; 65]).is_none());
        assert!(parse_hex32(b"").is_none());
    }

    #[test]
    fn decodes_random_digests() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5000 {
            let mut h = [0u8; 32];
            for b in &mut h {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            assert_eq!(parse_hex32(hex::encode(h).as_bytes()), Some(h));
        }
    }
}
