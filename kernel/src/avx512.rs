//! AVX-512 backend: sixteen nonces per instruction stream, one per 32-bit lane, with the
//! rotations (`vprold`) and three-input logic (`vpternlogd`) of SHA-256 in one instruction
//! each, and 32 vector registers.
//!
//! Everything that does not depend on the nonce is computed once per template ([`Prepared`]):
//! the rounds of the tail block before the first word the nonce touches, the constant message
//! words plus their round constants, and the constant part of every message-schedule word that
//! does depend on the nonce (likewise for the second hash, whose words 8..15 are padding). The
//! shape of the tail (which of its words the nonce touches) is a const generic, so the compiler
//! drops every operation on constant words; shapes without an instantiation take the general
//! one (every word varies). In header mode the key is the second hash's `h`, which is final
//! after round 60: the last three rounds are skipped.

use super::sha256::{compress_rounds, IV, K};
use super::template::Template;
use core::arch::x86_64::*;

pub const LANES: usize = 16;

/// Whether this CPU has what the backend needs.
pub fn supported() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

type V = __m512i;

#[target_feature(enable = "avx512f,avx512bw")]
fn add(a: V, b: V) -> V {
    _mm512_add_epi32(a, b)
}

#[target_feature(enable = "avx512f,avx512bw")]
fn splat(x: u32) -> V {
    _mm512_set1_epi32(x as i32)
}

#[target_feature(enable = "avx512f,avx512bw")]
fn big_sigma0(a: V) -> V {
    _mm512_ternarylogic_epi32::<0x96>(
        _mm512_ror_epi32::<2>(a),
        _mm512_ror_epi32::<13>(a),
        _mm512_ror_epi32::<22>(a),
    )
}

#[target_feature(enable = "avx512f,avx512bw")]
fn big_sigma1(e: V) -> V {
    _mm512_ternarylogic_epi32::<0x96>(
        _mm512_ror_epi32::<6>(e),
        _mm512_ror_epi32::<11>(e),
        _mm512_ror_epi32::<25>(e),
    )
}

#[target_feature(enable = "avx512f,avx512bw")]
fn small_sigma0(x: V) -> V {
    _mm512_ternarylogic_epi32::<0x96>(
        _mm512_ror_epi32::<7>(x),
        _mm512_ror_epi32::<18>(x),
        _mm512_srli_epi32::<3>(x),
    )
}

#[target_feature(enable = "avx512f,avx512bw")]
fn small_sigma1(x: V) -> V {
    _mm512_ternarylogic_epi32::<0x96>(
        _mm512_ror_epi32::<17>(x),
        _mm512_ror_epi32::<19>(x),
        _mm512_srli_epi32::<10>(x),
    )
}

/// `x`, unchanged but opaque to the optimizer, which would otherwise reassociate a sum to
/// add its constant last.
#[target_feature(enable = "avx512f,avx512bw")]
fn opaque(mut x: V) -> V {
    // SAFETY: an empty assembly template: no instruction, no memory, no flags; only the
    // optimizer loses sight of how `x` was made.
    unsafe {
        core::arch::asm!("/* {0} */", inout(zmm_reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    x
}

/// One round of the compression, `kw` being `W[t] + K[t]`.
///
/// Arranged for latency, which bounds this kernel (one round's instructions cannot fill the
/// vector pipes): `d + h + kw` does not depend on the previous round's `e` and `a`, so it is
/// ready early, and `Ch` before `Σ1`; from `e` to the next `e` there are then three steps
/// (rotate, `Σ1`, add) instead of five, and `Σ0` joins the new `a` last, which is the new `e`
/// plus `Maj - d`. One more operation a round than the textbook order. The sums are kept in
/// this order with [`opaque`]: left alone, the optimizer adds the round constant last.
#[target_feature(enable = "avx512f,avx512bw")]
fn round([a, b, c, d, e, f, g, h]: [V; 8], kw: V) -> [V; 8] {
    let dhk = opaque(add(add(d, h), kw));
    let ch = _mm512_ternarylogic_epi32::<0xCA>(e, f, g);
    let new_e = add(opaque(add(dhk, ch)), big_sigma1(e));
    // T1 + Maj is new_e - d + Maj.
    let maj_d = opaque(_mm512_sub_epi32(_mm512_ternarylogic_epi32::<0xE8>(a, b, c), d));
    let new_a = add(opaque(add(new_e, maj_d)), big_sigma0(a));
    [new_a, a, b, c, new_e, e, f, g]
}

fn s0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

fn s1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// Which of the 64 schedule words depend on the nonce, given which of the 16 block words do.
const fn varying(block: u16) -> u64 {
    let mut v = block as u64;
    let mut t = 16;
    while t < 64 {
        let deps = (1u64 << (t - 2)) | (1 << (t - 7)) | (1 << (t - 15)) | (1 << (t - 16));
        if v & deps != 0 {
            v |= 1 << t;
        }
        t += 1;
    }
    v
}

/// The nonce-independent part of one compression whose block words `mask` vary.
#[derive(Clone, Copy, Debug)]
struct Sched {
    /// The state after the rounds before the first varying word.
    start: [u32; 8],
    /// After the first varying round, `a` and `e` are these plus that round's word (the rest
    /// of that round works on the constant `start`).
    a1: u32,
    e1: u32,
    /// For a constant schedule word, `W[t] + K[t]`; for a varying one, the sum of its
    /// constant terms.
    c: [u32; 64],
}

impl Sched {
    /// `block`: the words (varying ones zero, they are never read), `mask`: which vary.
    fn new(state: &[u32; 8], block: &[u32; 16], mask: u16) -> Self {
        let vary = varying(mask);
        let var = |t: usize| vary >> t & 1 != 0;
        let mut w = [0u32; 64];
        w[..16].copy_from_slice(block);
        let mut c = [0u32; 64];
        for t in 0..64 {
            if t >= 16 {
                // Constant terms only; for a constant word that is the whole word.
                let terms =
                    [(t - 2, s1(w[t - 2])), (t - 7, w[t - 7]), (t - 15, s0(w[t - 15])), (t - 16, w[t - 16])];
                w[t] = terms.iter().filter(|(i, _)| !var(*i)).fold(0u32, |s, (_, x)| s.wrapping_add(*x));
            }
            c[t] = if var(t) { w[t] } else { w[t].wrapping_add(K[t]) };
        }
        let first = (mask.trailing_zeros() as usize).min(16);
        let mut start = *state;
        compress_rounds(&mut start, &w, 0, first);
        // One round with a zero word gives the constant part of the first varying round.
        let (mut a1, mut e1) = (0, 0);
        if first < 16 {
            let mut v = start;
            let mut w0 = w;
            w0[first] = 0;
            compress_rounds(&mut v, &w0, first, first + 1);
            (a1, e1) = (v[0], v[4]);
        }
        Sched { start, a1, e1, c }
    }
}

/// Rounds `tz(BLOCK)..LAST` of one compression of sixteen lanes from `s.start`; `w` holds the
/// varying block words (the others are never read). Returns the state, not yet added in.
#[allow(unused_assignments, unused_comparisons)] // the unrolled rounds' last schedule stores, T >= 0
#[target_feature(enable = "avx512f,avx512bw")]
fn rounds<const BLOCK: u16, const LAST: usize>(s: &Sched, mut w: [V; 16]) -> [V; 8] {
    let vary = const { varying(BLOCK) };
    let first = const {
        if BLOCK == 0 {
            64
        } else {
            BLOCK.trailing_zeros() as usize
        }
    };
    let var = |t: usize| vary >> t & 1 != 0;
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = s.start.map(|x| splat(x));
    macro_rules! round {
        ($($t:literal)*) => {$(
            if $t == first && $t < 16 && $t < LAST {
                // The state is still the constant `start`: only the word varies.
                const T: usize = $t;
                let [sa, sb, sc, _, se, sf, sg, _] = s.start.map(|x| splat(x));
                (b, c, d, f, g, h) = (sa, sb, sc, se, sf, sg);
                a = add(splat(s.a1), w[T % 16]);
                e = add(splat(s.e1), w[T % 16]);
            } else if $t > first && $t < LAST {
                const T: usize = $t;
                let kw = if !var(T) {
                    splat(s.c[T])
                } else if T < 16 {
                    add(w[T % 16], splat(K[T]))
                } else {
                    let mut x = splat(s.c[T]);
                    if var(T - 2) { x = add(x, small_sigma1(w[(T + 14) % 16])); }
                    if var(T - 7) { x = add(x, w[(T + 9) % 16]); }
                    if var(T - 15) { x = add(x, small_sigma0(w[(T + 1) % 16])); }
                    if var(T - 16) { x = add(x, w[T % 16]); }
                    w[T % 16] = x;
                    add(x, splat(K[T]))
                };
                [a, b, c, d, e, f, g, h] = round([a, b, c, d, e, f, g, h], kw);
            }
        )*};
    }
    round!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
           32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
    [a, b, c, d, e, f, g, h]
}

/// Which tail words the nonce touches, and the shape instantiated for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One tail block, the nonce in word 3 only (Bitcoin headers; a 12-byte prefix).
    Word3,
    /// One tail block, the nonce in words 3 and 4 (a 13..15-byte prefix, e.g. COMSM0010cloud).
    Words34,
    /// Anything else: every word of every tail block varies.
    General,
}

/// The per-template constants of this backend.
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    shape: Shape,
    first: Sched,
    hash2: Sched,
    /// Per window word `j`: left and right shift of the 32-bit nonce value (32 means none).
    shl: [u32; 4],
    shr: [u32; 4],
}

impl Prepared {
    pub fn new(t: &Template) -> Self {
        let max = if t.encoding.width() == 4 { u64::from(u32::MAX) } else { u64::MAX };
        let window = (u128::from(max)) << t.shift;
        let mut touched = 0u32;
        for j in 0..4 {
            if (window >> (96 - 32 * j)) as u32 != 0 {
                touched |= 1 << (t.window + j);
            }
        }
        let shape = match (t.blocks, touched) {
            (1, 0b1000) => Shape::Word3,
            (1, 0b1_1000) => Shape::Words34,
            _ => Shape::General,
        };
        let mask = match shape {
            Shape::Word3 => 0b1000,
            Shape::Words34 => 0b1_1000,
            Shape::General => 0xFFFF,
        };
        let mut block = [0u32; 16];
        block.copy_from_slice(&t.words[..16]);
        let first = Sched::new(&t.midstate, &block, mask);
        let mut pad = [0u32; 16];
        pad[8] = 0x8000_0000;
        pad[15] = 256;
        let hash2 = Sched::new(&IV, &pad, 0x00FF);
        let mut shl = [32; 4];
        let mut shr = [32; 4];
        for j in 0..4 {
            let low = 96 - 32 * j as i32; // the window bit where word j starts
            let d = t.shift as i32 - low;
            if d >= 0 {
                shl[j] = d.min(32) as u32;
            } else {
                shr[j] = (-d).min(32) as u32;
            }
        }
        Prepared { shape, first, hash2, shl, shr }
    }
}

/// The window words of sixteen consecutive nonces from `base`, as vectors.
#[target_feature(enable = "avx512f,avx512bw")]
fn window(t: &Template, p: &Prepared, base: u64) -> [V; 4] {
    if t.encoding.width() == 4 {
        // 32-bit nonces: a group never crosses 2^32 (the space ends there).
        let n =
            add(splat(base as u32), _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
        let v = if t.encoding == protocol::Encoding::Le32 {
            let swap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
            _mm512_shuffle_epi8(n, swap)
        } else {
            n
        };
        core::array::from_fn(|j| {
            _mm512_or_si512(_mm512_sllv_epi32(v, splat(p.shl[j])), _mm512_srlv_epi32(v, splat(p.shr[j])))
        })
    } else {
        let mut cols = [[0u32; LANES]; 4];
        for l in 0..LANES {
            for (col, w) in cols.iter_mut().zip(t.window_words(base.wrapping_add(l as u64))) {
                col[l] = w;
            }
        }
        // SAFETY: each column is 16 u32s, exactly one unaligned 512-bit load.
        cols.map(|c| unsafe { _mm512_loadu_si512(c.as_ptr().cast()) })
    }
}

/// Keys of the sixteen nonces from `base`.
#[target_feature(enable = "avx512f,avx512bw")]
fn keys<const BLOCK: u16>(t: &Template, p: &Prepared, base: u64) -> V {
    let win = window(t, p, base);
    let tail: [V; 32] = core::array::from_fn(|i| {
        let w = splat(t.words[i]);
        if i >= t.window && i < t.window + 4 {
            _mm512_or_si512(w, win[i - t.window])
        } else {
            w
        }
    });
    let mut w1 = [splat(0); 16];
    w1.copy_from_slice(&tail[..16]);
    let mut state = rounds::<BLOCK, 64>(&p.first, w1);
    for (s, m) in state.iter_mut().zip(t.midstate) {
        *s = add(*s, splat(m));
    }
    if BLOCK == 0xFFFF && t.blocks == 2 {
        let mut w2 = [splat(0); 16];
        w2.copy_from_slice(&tail[16..]);
        let out = rounds_from(state, w2);
        for (s, o) in state.iter_mut().zip(out) {
            *s = add(*s, o);
        }
    }
    let mut msg = [splat(0); 16];
    msg[..8].copy_from_slice(&state);
    if t.reversed {
        // h after 64 rounds is e after 61: rounds 61..63 are skipped.
        let out = rounds::<0x00FF, 61>(&p.hash2, msg);
        let h = add(out[4], splat(IV[7]));
        let swap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
        _mm512_shuffle_epi8(h, swap)
    } else {
        let out = rounds::<0x00FF, 64>(&p.hash2, msg);
        add(out[0], splat(IV[0]))
    }
}

/// All 64 rounds from per-lane states (the second block of a two-block tail), not added in.
#[target_feature(enable = "avx512f,avx512bw")]
fn rounds_from(start: [V; 8], mut w: [V; 16]) -> [V; 8] {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = start;
    for t in 0..64 {
        let x = if t < 16 {
            w[t]
        } else {
            let x = add(
                add(small_sigma1(w[(t + 14) % 16]), w[(t + 9) % 16]),
                add(small_sigma0(w[(t + 1) % 16]), w[t % 16]),
            );
            w[t % 16] = x;
            x
        };
        [a, b, c, d, e, f, g, h] = round([a, b, c, d, e, f, g, h], add(x, splat(K[t])));
    }
    [a, b, c, d, e, f, g, h]
}

#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw")]
fn scan_shape<const BLOCK: u16>(
    t: &Template,
    p: &Prepared,
    start: u64,
    count: u64,
    threshold: u32,
    on_candidate: &mut dyn FnMut(u64) -> u32,
) {
    t.scan_groups::<LANES>(start, count, threshold, on_candidate, |base, threshold| {
        let k = keys::<BLOCK>(t, p, base);
        // Most groups hold no candidate: one compare decides, before any lane leaves the register.
        if _mm512_cmple_epu32_mask(k, splat(threshold)) == 0 {
            return None;
        }
        let mut lanes = [0u32; LANES];
        // SAFETY: `lanes` is 16 u32s, exactly one unaligned 512-bit store.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), k) };
        Some(lanes)
    })
}

/// Scans `start..start+count` sixteen at a time; the rest goes the portable way.
///
/// # Safety
/// The CPU must support AVX-512 F and BW ([`supported`]).
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn scan(
    t: &Template,
    p: &Prepared,
    start: u64,
    count: u64,
    threshold: u32,
    on_candidate: &mut dyn FnMut(u64) -> u32,
) {
    match p.shape {
        Shape::Word3 => scan_shape::<0b1000>(t, p, start, count, threshold, on_candidate),
        Shape::Words34 => scan_shape::<0b1_1000>(t, p, start, count, threshold, on_candidate),
        Shape::General => scan_shape::<0xFFFF>(t, p, start, count, threshold, on_candidate),
    }
}
