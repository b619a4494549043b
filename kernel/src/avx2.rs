//! AVX2 backend: eight nonces at once, one per 32-bit lane, the rounds written out as for a
//! scalar SHA-256. The fallback for x86-64 CPUs without the SHA extensions.

use super::sha256::{IV, K};
use super::template::Template;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

pub const LANES: usize = 8;

pub fn supported() -> bool {
    is_x86_feature_detected!("avx2")
}

#[target_feature(enable = "avx2")]
fn rotr<const R: i32, const L: i32>(x: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_srli_epi32::<R>(x), _mm256_slli_epi32::<L>(x))
}

#[target_feature(enable = "avx2")]
fn add(a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(a, b)
}

#[target_feature(enable = "avx2")]
fn xor3(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
    _mm256_xor_si256(_mm256_xor_si256(a, b), c)
}

/// `x`, unchanged but opaque to the optimizer, so that it keeps the order of the round's sums.
#[target_feature(enable = "avx2")]
fn opaque(mut x: __m256i) -> __m256i {
    // SAFETY: an empty assembly template: no instruction, no memory, no flags; only the
    // optimizer loses sight of how `x` was made.
    unsafe {
        core::arch::asm!("/* {0} */", inout(ymm_reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    x
}

#[target_feature(enable = "avx2")]
fn splat(x: u32) -> __m256i {
    _mm256_set1_epi32(x as i32)
}

/// One compression per lane: `state` is (a..h) lane-sliced, `w` the 16 message words.
#[target_feature(enable = "avx2")]
fn compress(state: &mut [__m256i; 8], mut w: [__m256i; 16]) {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for t in 0..64 {
        let wt = if t < 16 {
            w[t]
        } else {
            let w15 = w[(t + 1) % 16];
            let w2 = w[(t + 14) % 16];
            let s0 = xor3(rotr::<7, 25>(w15), rotr::<18, 14>(w15), _mm256_srli_epi32::<3>(w15));
            let s1 = xor3(rotr::<17, 15>(w2), rotr::<19, 13>(w2), _mm256_srli_epi32::<10>(w2));
            let next = add(add(w[t % 16], s0), add(w[(t + 9) % 16], s1));
            w[t % 16] = next;
            next
        };
        // Ordered for latency as in the AVX-512 backend: `d + h + W + K` from earlier rounds'
        // values, then `Ch`, then `Σ1`; the new `a` is the new `e` plus `Maj - d`, `Σ0` last.
        let dhk = opaque(add(add(d, h), add(wt, splat(K[t]))));
        let ch = _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g)));
        let s1 = xor3(rotr::<6, 26>(e), rotr::<11, 21>(e), rotr::<25, 7>(e));
        let new_e = add(opaque(add(dhk, ch)), s1);
        let maj = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(c, _mm256_or_si256(a, b)));
        let maj_d = opaque(_mm256_sub_epi32(maj, d));
        let s0 = xor3(rotr::<2, 30>(a), rotr::<13, 19>(a), rotr::<22, 10>(a));
        h = g;
        g = f;
        f = e;
        e = new_e;
        d = c;
        c = b;
        b = a;
        a = add(opaque(add(new_e, maj_d)), s0);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = add(*s, v);
    }
}

/// Keys of the eight nonces `base..base+8`.
#[target_feature(enable = "avx2")]
fn keys(t: &Template, base: u64) -> [u32; LANES] {
    let words: [[u32; 32]; LANES] = core::array::from_fn(|l| t.words_for(base.wrapping_add(l as u64)));
    let column = |i: usize| -> __m256i {
        let c: [i32; LANES] = core::array::from_fn(|l| words[l][i] as i32);
        _mm256_set_epi32(c[7], c[6], c[5], c[4], c[3], c[2], c[1], c[0])
    };
    let mut state = t.midstate.map(|x| splat(x));
    compress(&mut state, core::array::from_fn(column));
    if t.blocks == 2 {
        compress(&mut state, core::array::from_fn(|i| column(16 + i)));
    }
    let mut msg = [splat(0); 16];
    msg[..8].copy_from_slice(&state);
    msg[8] = splat(0x8000_0000);
    msg[15] = splat(256);
    let mut out = IV.map(|x| splat(x));
    compress(&mut out, msg);
    let word = if t.reversed { out[7] } else { out[0] };
    // `_mm256_extract_epi32` needs a constant index, hence spelled out.
    let lanes = [
        _mm256_extract_epi32::<0>(word),
        _mm256_extract_epi32::<1>(word),
        _mm256_extract_epi32::<2>(word),
        _mm256_extract_epi32::<3>(word),
        _mm256_extract_epi32::<4>(word),
        _mm256_extract_epi32::<5>(word),
        _mm256_extract_epi32::<6>(word),
        _mm256_extract_epi32::<7>(word),
    ]
    .map(|x| x as u32);
    if t.reversed {
        lanes.map(u32::swap_bytes)
    } else {
        lanes
    }
}

/// Scans `start..start+count` eight at a time; the rest goes the portable way.
///
/// # Safety
/// The CPU must support AVX2 ([`supported`]).
#[target_feature(enable = "avx2")]
pub unsafe fn scan(
    t: &Template,
    start: u64,
    count: u64,
    threshold: u32,
    on_candidate: &mut dyn FnMut(u64) -> u32,
) {
    t.scan_groups::<LANES>(start, count, threshold, on_candidate, |base, _| Some(keys(t, base)))
}
