//! A structural index of one line, built before the scanner walks it: for
//! every byte, three bits saying where a run of string, key or digit bytes
//! must stop. The scanner then jumps from token to token with a
//! trailing-zero count instead of testing byte after byte; that byte loop
//! was most of verify's CPU time.
//!
//! On x86_64 the bits come from SSE2 (part of the x86_64 baseline, so there
//! is nothing to detect at run time), sixteen bytes per compare; elsewhere
//! from a portable byte loop that is also the reference the unit tests hold
//! the SSE2 path to.

/// Lines up to this long are indexed in a buffer on the stack.
const STACK_WORDS: usize = 16;

/// Bit `i` of word `i / 64` describes byte `i` of the line. Bytes past the
/// end of the line are set in every mask, so every run stops at the end.
pub struct Index {
    words: usize,
    stack: [[u64; 3]; STACK_WORDS],
    heap: Vec<[u64; 3]>,
    /// No byte is 0x80 or above (then the line is valid UTF-8 as it is).
    ascii: bool,
}

/// An [`Index`] as the scanner reads it.
#[derive(Clone, Copy)]
pub struct View<'i> {
    masks: &'i [[u64; 3]],
}

/// The three masks, by position in each `[u64; 3]`.
#[derive(Clone, Copy)]
pub enum Stop {
    /// Ends a run of plain string bytes: `"`, `\`, or below 0x20.
    String = 0,
    /// Ends a run of key bytes: also DEL and everything above it (keys are
    /// printable ASCII).
    Key = 1,
    /// Ends a run of digits: anything but `0`–`9`.
    Digits = 2,
}

/// Writes the masks of `b` into `out` (one entry per 64 bytes, and one for
/// the partial block or the end); returns which bytes are 0x80 or above.
#[inline(always)]
fn fill(b: &[u8], out: &mut [[u64; 3]]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (detected just above; std caches it).
        return unsafe { fill_avx2(b, out) };
    }
    fill_with(b, out, block_masks)
}

/// [`fill`] with AVX2: a 64-byte block in two compares per class instead
/// of four, which made building the index about half as costly.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fill_avx2(b: &[u8], out: &mut [[u64; 3]]) -> u64 {
    fill_with(b, out, |block| avx2_masks(block))
}

#[inline(always)]
fn fill_with(
    b: &[u8],
    out: &mut [[u64; 3]],
    block_masks: impl Fn(&[u8; 64]) -> ([u64; 3], u64),
) -> u64 {
    let words = out.len();
    let mut high = 0u64;
    let mut blocks = b.chunks_exact(64);
    for (slot, block) in out.iter_mut().zip(&mut blocks) {
        let Ok(block) = <&[u8; 64]>::try_from(block) else {
            unreachable!("chunks_exact(64) yields 64-byte blocks")
        };
        let (masks, h) = block_masks(block);
        *slot = masks;
        high |= h;
    }
    // The last, partial block: padded with a byte that stops every run
    // (a quote is a string and key stop and not a digit), then the bits
    // past the end are forced on.
    let rest = blocks.remainder();
    let mut last = [b'"'; 64];
    last[..rest.len()].copy_from_slice(rest);
    let (mut masks, h) = block_masks(&last);
    high |= h;
    let past_end = !0u64 << rest.len();
    for m in &mut masks {
        *m |= past_end;
    }
    out[words - 1] = masks;
    high
}

impl Index {
    /// Inlined so the index is built in its caller's frame: returned by
    /// value it was a 400-byte copy per line.
    #[inline(always)]
    pub fn new(b: &[u8]) -> Index {
        let words = b.len() / 64 + 1;
        let mut index = Index {
            words,
            stack: [[0; 3]; STACK_WORDS],
            heap: Vec::new(),
            ascii: true,
        };
        if words > STACK_WORDS {
            index.heap = vec![[0; 3]; words];
        }
        let out = if words > STACK_WORDS {
            &mut index.heap[..]
        } else {
            &mut index.stack[..words]
        };
        let high = fill(b, out);
        index.ascii = high == 0;
        index
    }

    /// Whether every byte is below 0x80.
    pub fn ascii(&self) -> bool {
        self.ascii
    }

    pub fn view(&self) -> View<'_> {
        View {
            masks: if self.words > STACK_WORDS {
                &self.heap
            } else {
                &self.stack[..self.words]
            },
        }
    }
}

impl View<'_> {
    /// The first position at or after `from` whose `stop` bit is set (the
    /// line's length or beyond when none is inside the line).
    #[inline]
    pub fn next(&self, stop: Stop, from: usize) -> usize {
        let masks = self.masks;
        let mut w = from / 64;
        let Some(first) = masks.get(w) else {
            return from;
        };
        let mut bits = first[stop as usize] & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return w * 64 + bits.trailing_zeros() as usize;
            }
            w += 1;
            match masks.get(w) {
                Some(m) => bits = m[stop as usize],
                // Unreachable: the last word has every bit past the end set.
                None => return w * 64,
            }
        }
    }
}

/// The three stop masks of one 64-byte block, and which bytes are 0x80 or
/// above.
#[inline]
fn block_masks(block: &[u8; 64]) -> ([u64; 3], u64) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        // SAFETY: SSE2 is enabled for this build (the cfg above checks it;
        // it is in the x86_64 baseline), which is all `sse2_masks` needs.
        unsafe { sse2_masks(block) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        scalar_masks(block)
    }
}

/// The reference: one byte at a time.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn scalar_masks(block: &[u8; 64]) -> ([u64; 3], u64) {
    let mut m = [0u64; 3];
    let mut high = 0u64;
    for (i, &c) in block.iter().enumerate() {
        let string_stop = c == b'"' || c == b'\\' || c < 0x20;
        let key_stop = string_stop || c >= 0x7f;
        let digit_stop = !c.is_ascii_digit();
        m[Stop::String as usize] |= u64::from(string_stop) << i;
        m[Stop::Key as usize] |= u64::from(key_stop) << i;
        m[Stop::Digits as usize] |= u64::from(digit_stop) << i;
        high |= u64::from(c >= 0x80) << i;
    }
    (m, high)
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
fn sse2_masks(block: &[u8; 64]) -> ([u64; 3], u64) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set_epi64x, _mm_set1_epi8,
    };
    let mut m = [0u64; 3];
    let mut all_high = 0u64;
    for (part, bytes) in block.chunks_exact(16).enumerate() {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            i64::from_le_bytes(w)
        };
        let v = _mm_set_epi64x(word(8), word(0));
        // Signed compares: bytes >= 0x80 are negative.
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let bslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        let below_space_or_high = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
        let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
        let high = _mm_movemask_epi8(v) as u32 as u64;
        let digit_lo = _mm_cmpgt_epi8(v, _mm_set1_epi8(b'0' as i8 - 1));
        let digit_hi = _mm_cmplt_epi8(v, _mm_set1_epi8(b'9' as i8 + 1));
        let bits = |x| _mm_movemask_epi8(x) as u32 as u64;
        let quote_or_bslash = bits(_mm_or_si128(quote, bslash));
        let low_or_high = bits(below_space_or_high);
        let string_stop = quote_or_bslash | (low_or_high & !high);
        let key_stop = quote_or_bslash | low_or_high | bits(del);
        let digit = bits(digit_lo) & bits(digit_hi);
        let shift = part * 16;
        m[Stop::String as usize] |= string_stop << shift;
        m[Stop::Key as usize] |= key_stop << shift;
        m[Stop::Digits as usize] |= (!digit & 0xffff) << shift;
        all_high |= high << shift;
    }
    (m, all_high)
}

/// [`sse2_masks`] on 32 bytes per compare.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn avx2_masks(block: &[u8; 64]) -> ([u64; 3], u64) {
    use std::arch::x86_64::{
        _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8,
    };
    let mut m = [0u64; 3];
    let mut all_high = 0u64;
    for half in 0..2 {
        // SAFETY: `block` is 64 bytes: the unaligned 32-byte load at
        // 32 * half is inside it.
        let v = unsafe { _mm256_loadu_si256(block.as_ptr().add(half * 32).cast()) };
        let bits = |x| _mm256_movemask_epi8(x) as u32 as u64;
        let quote = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8));
        let bslash = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8));
        // Signed compares: bytes >= 0x80 are negative.
        let below_space_or_high = _mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v);
        let del = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x7f));
        let high = bits(v);
        let digit_lo = _mm256_cmpgt_epi8(v, _mm256_set1_epi8(b'0' as i8 - 1));
        let digit_hi = _mm256_cmpgt_epi8(_mm256_set1_epi8(b'9' as i8 + 1), v);
        let quote_or_bslash = bits(_mm256_or_si256(quote, bslash));
        let low_or_high = bits(below_space_or_high);
        let string_stop = quote_or_bslash | (low_or_high & !high);
        let key_stop = quote_or_bslash | low_or_high | bits(del);
        let digit = bits(digit_lo) & bits(digit_hi);
        let shift = half * 32;
        m[Stop::String as usize] |= string_stop << shift;
        m[Stop::Key as usize] |= key_stop << shift;
        m[Stop::Digits as usize] |= (!digit & 0xffff_ffff) << shift;
        all_high |= high << shift;
    }
    (m, all_high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse2_agrees_with_the_byte_loop_on_every_byte_value() {
        // Every byte value at every position of a block, and a few
        // pseudo-random blocks.
        for v in 0..=255u8 {
            for at in 0..64 {
                let mut block = [b'a'; 64];
                block[at] = v;
                assert_eq!(
                    block_masks(&block),
                    scalar_masks(&block),
                    "byte {v:#x} at {at}"
                );
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut block = [0u8; 64];
            for b in &mut block {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            assert_eq!(block_masks(&block), scalar_masks(&block));
        }
    }

    /// The AVX2 index equals the portable one on every byte value at every
    /// position of lines of every length up to three words.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_index_agrees_with_the_byte_loop() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let build = |line: &[u8], avx2: bool| {
            let mut out = vec![[0u64; 3]; line.len() / 64 + 1];
            // SAFETY: AVX2 was detected above.
            let high = if avx2 {
                unsafe { fill_avx2(line, &mut out) }
            } else {
                fill_with(line, &mut out, scalar_masks)
            };
            (out, high)
        };
        for len in 0..=192usize {
            let at = (len * 7) % len.max(1);
            for v in 0..=255u8 {
                let mut line = vec![b'a'; len];
                if len > 0 {
                    line[at] = v;
                }
                assert_eq!(
                    build(&line, true),
                    build(&line, false),
                    "byte {v:#x} at {at} of {len}"
                );
            }
        }
        for at in 0..64 {
            for v in 0..=255u8 {
                let mut block = [b'a'; 64];
                block[at] = v;
                // SAFETY: AVX2 was detected above.
                assert_eq!(
                    unsafe { avx2_masks(&block) },
                    scalar_masks(&block),
                    "byte {v:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn next_finds_stops_and_ends_at_the_line_end() {
        let line = br#"{"ab":"cd\"e","n":123}"#;
        let index = Index::new(line);
        assert!(index.ascii());
        let ix = index.view();
        assert_eq!(ix.next(Stop::Key, 2), 4);
        assert_eq!(ix.next(Stop::String, 7), 9);
        assert_eq!(ix.next(Stop::Digits, 18), 21);
        assert_eq!(ix.next(Stop::Digits, 22), 22);
        // A long line crosses words and the heap buffer.
        let long = vec![b'x'; 64 * STACK_WORDS + 10];
        let index = Index::new(&long);
        let ix = index.view();
        assert_eq!(ix.next(Stop::String, 0), long.len());
        assert_eq!(ix.next(Stop::Digits, 5), 5);
        assert!(!Index::new("{\"k\":\"é\"}".as_bytes()).ascii());
    }
}
