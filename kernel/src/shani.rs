//! SHA-NI backend: `N` nonces interleaved through the SHA extensions.
//!
//! One `sha256rnds2` stream is latency-bound; the unit's throughput is about twice that, so
//! hashing several independent nonces in lockstep keeps it busy. Everything is written for a
//! const `N` and fully unrolled by the compiler, so the lanes' instructions interleave.

use super::sha256::{IV, K};
use super::template::Template;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Whether this CPU has what the backend needs.
pub fn supported() -> bool {
    is_x86_feature_detected!("sha") && is_x86_feature_detected!("sse4.1") && is_x86_feature_detected!("ssse3")
}

/// Constants and the midstate in SHA-NI register form, made once per template.
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    mid: (__m128i, __m128i),
    iv: (__m128i, __m128i),
    /// The tail's message words as vectors (two blocks), nonce bits zero.
    base: [__m128i; 8],
    /// Index of the vector where the nonce window starts; it may spill into the next one.
    first: usize,
    /// `pshufb` masks moving the window's words into vectors `first` and `first + 1`.
    mask: (__m128i, __m128i),
    /// Rounds 0 and 1 of the first block, when message words 0 and 1 hold no nonce bits.
    first2: Option<__m128i>,
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn to_abef_cdgh(s: &[u32; 8]) -> (__m128i, __m128i) {
    // abef: elements (f, e, b, a) from low to high; cdgh: (h, g, d, c).
    let abef = _mm_set_epi32(s[0] as i32, s[1] as i32, s[4] as i32, s[5] as i32);
    let cdgh = _mm_set_epi32(s[2] as i32, s[3] as i32, s[6] as i32, s[7] as i32);
    (abef, cdgh)
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn kvec(i: usize) -> __m128i {
    _mm_set_epi32(K[4 * i + 3] as i32, K[4 * i + 2] as i32, K[4 * i + 1] as i32, K[4 * i] as i32)
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn words_vec(w: &[u32], i: usize) -> __m128i {
    _mm_set_epi32(w[4 * i + 3] as i32, w[4 * i + 2] as i32, w[4 * i + 1] as i32, w[4 * i] as i32)
}

/// One compression of a 64-byte block per lane, in lockstep. With `SKIP`, rounds 0 and 1
/// are not computed: `first2` is their (nonce-independent) result.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress<const N: usize, const SKIP: bool>(
    abef: &mut [__m128i; N],
    cdgh: &mut [__m128i; N],
    mut w: [[__m128i; 4]; N],
    first2: __m128i,
) {
    let save = (*abef, *cdgh);
    for i in 0..16 {
        let k = kvec(i);
        for l in 0..N {
            let msg = if i < 4 {
                w[l][i]
            } else {
                let (v0, v1, v2, v3) = (w[l][i % 4], w[l][(i + 1) % 4], w[l][(i + 2) % 4], w[l][(i + 3) % 4]);
                let t = _mm_add_epi32(_mm_sha256msg1_epu32(v0, v1), _mm_alignr_epi8(v3, v2, 4));
                let next = _mm_sha256msg2_epu32(t, v3);
                w[l][i % 4] = next;
                next
            };
            let t1 = _mm_add_epi32(msg, k);
            cdgh[l] = if SKIP && i == 0 { first2 } else { _mm_sha256rnds2_epu32(cdgh[l], abef[l], t1) };
            abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(t1, 0x0E));
        }
    }
    for l in 0..N {
        abef[l] = _mm_add_epi32(abef[l], save.0[l]);
        cdgh[l] = _mm_add_epi32(cdgh[l], save.1[l]);
    }
}

impl Prepared {
    /// # Safety
    /// The CPU must support the SHA extensions and SSE4.1 ([`supported`]).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn new(t: &Template) -> Self {
        let first = t.window / 4;
        let r = t.window % 4;
        // The window vector holds its words most significant first from element 3 down:
        // window word j sits in element 3 - j. Vector element e of `first` takes window word
        // e - r, and of `first + 1` takes word 4 - r + e.
        let mask_for = |word_of: &dyn Fn(usize) -> Option<usize>| {
            let mut bytes = [0x80u8; 16];
            for e in 0..4 {
                if let Some(j) = word_of(e).filter(|&j| j < 4) {
                    for b in 0..4 {
                        bytes[4 * e + b] = (4 * (3 - j) + b) as u8;
                    }
                }
            }
            let lo = u64::from_le_bytes([
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
            ]);
            let hi = u64::from_le_bytes([
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15],
            ]);
            _mm_set_epi64x(hi as i64, lo as i64)
        };
        let mask = (mask_for(&|e| e.checked_sub(r)), mask_for(&|e| Some(4 - r + e)));
        let mid = to_abef_cdgh(&t.midstate);
        let base: [__m128i; 8] = core::array::from_fn(|i| words_vec(&t.words, i));
        let first2 =
            (t.window >= 2).then(|| _mm_sha256rnds2_epu32(mid.1, mid.0, _mm_add_epi32(base[0], kvec(0))));
        Prepared { mid, iv: to_abef_cdgh(&IV), base, first, mask, first2 }
    }
}

/// Keys (first hash word in display order) of `N` nonces.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn keys<const N: usize>(t: &Template, p: &Prepared, nonces: &[u64; N]) -> [u32; N] {
    let mut abef = [p.mid.0; N];
    let mut cdgh = [p.mid.1; N];
    let msgs: [[__m128i; 8]; N] = core::array::from_fn(|l| {
        let v = u128::from(t.value(nonces[l])) << t.shift;
        let window = _mm_set_epi64x((v >> 64) as i64, v as i64);
        let mut m = p.base;
        m[p.first] = _mm_or_si128(m[p.first], _mm_shuffle_epi8(window, p.mask.0));
        if p.first + 1 < 8 {
            m[p.first + 1] = _mm_or_si128(m[p.first + 1], _mm_shuffle_epi8(window, p.mask.1));
        }
        m
    });
    let block0 = core::array::from_fn(|l| [msgs[l][0], msgs[l][1], msgs[l][2], msgs[l][3]]);
    match p.first2 {
        Some(first2) => compress::<N, true>(&mut abef, &mut cdgh, block0, first2),
        None => compress::<N, false>(&mut abef, &mut cdgh, block0, p.mid.1),
    }
    if t.blocks == 2 {
        let block1 = core::array::from_fn(|l| [msgs[l][4], msgs[l][5], msgs[l][6], msgs[l][7]]);
        compress::<N, false>(&mut abef, &mut cdgh, block1, p.mid.1);
    }
    // The first hash's state becomes the second hash's message: (a b c d) and (e f g h).
    let pad0 = _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32);
    let pad1 = _mm_set_epi32(256, 0, 0, 0);
    let msg: [[__m128i; 4]; N] = core::array::from_fn(|l| {
        let feba = _mm_shuffle_epi32(abef[l], 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh[l], 0xB1);
        [_mm_blend_epi16(feba, dchg, 0xF0), _mm_alignr_epi8(dchg, feba, 8), pad0, pad1]
    });
    let mut abef2 = [p.iv.0; N];
    let mut cdgh2 = [p.iv.1; N];
    compress::<N, false>(&mut abef2, &mut cdgh2, msg, p.iv.1);
    core::array::from_fn(|l| {
        if t.reversed {
            (_mm_cvtsi128_si32(cdgh2[l]) as u32).swap_bytes() // h is element 0 of cdgh
        } else {
            _mm_extract_epi32(abef2[l], 3) as u32 // a is element 3 of abef
        }
    })
}

/// Scans `start..start+count` in groups of `N`; the tail of fewer than `N` goes the portable way.
///
/// # Safety
/// The CPU must support the SHA extensions and SSE4.1 ([`supported`]).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub unsafe fn scan<const N: usize>(
    t: &Template,
    p: &Prepared,
    start: u64,
    count: u64,
    threshold: u32,
    on_candidate: &mut dyn FnMut(u64) -> u32,
) {
    t.scan_groups::<N>(start, count, threshold, on_candidate, |base, _| {
        let nonces: [u64; N] = core::array::from_fn(|l| base.wrapping_add(l as u64));
        Some(keys::<N>(t, p, &nonces))
    })
}
