// Double SHA-256 of `prefix || nonce` for a run of nonces, one invocation a stretch of
// consecutive nonces. The host precomputes what does not depend on the nonce (see gpu.rs):
// the midstate of the whole blocks before it, the tail words with padding, and the working
// state after the tail's first rounds, whose message words hold no nonce byte. Each nonce
// whose key (the first hash word in display order) is at most `threshold` is appended to
// `found` through an atomic counter; the host sorts them and replays them in nonce order.

struct Params {
    midstate: array<u32, 8>,
    // The working state after rounds 0..window of the first tail block.
    pre: array<u32, 8>,
    // Two 64-byte tail blocks, nonce bytes zero, padding and length in place.
    words: array<u32, 32>,
    base_lo: u32,
    base_hi: u32,
    count: u32,
    threshold: u32,
    per_invocation: u32,
    // The first of the four tail words the nonce's bits may touch (at most 15).
    window: u32,
    // The nonce's big-endian value sits at bit `shift` of the 128-bit window.
    shift: u32,
    // Bits 0-1: the encoding (be32, le32, be64, le64); bit 2: key from the reversed hash;
    // bit 3: the tail has two blocks.
    flags: u32,
    capacity: u32,
}

struct Found {
    count: atomic<u32>,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    // (nonce low word, nonce high word, key, 0) for each candidate, unordered.
    items: array<vec4<u32>>,
}

@group(0) @binding(0) var<storage, read> params: Params;
@group(0) @binding(1) var<storage, read_write> found: Found;

var<private> K: array<u32, 64> = array<u32, 64>(
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
);

const IV = array<u32, 8>(
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
);

fn rotr(x: u32, n: u32) -> u32 {
    return (x >> n) | (x << (32u - n));
}

fn bswap(x: u32) -> u32 {
    return (x << 24u) | ((x << 8u) & 0x00ff0000u) | ((x >> 8u) & 0x0000ff00u) | (x >> 24u);
}

// Rounds `first..64` on working state `v` with message block `block`; the state is not added in.
fn rounds(v: array<u32, 8>, block: array<u32, 16>, first: u32) -> array<u32, 8> {
    var w = block;
    var a = v[0]; var b = v[1]; var c = v[2]; var d = v[3];
    var e = v[4]; var f = v[5]; var g = v[6]; var h = v[7];
    // The schedule words before `first` are still needed to expand the later ones.
    for (var t = first; t < 64u; t++) {
        var wt: u32;
        if (t < 16u) {
            wt = w[t];
        } else {
            let w15 = w[(t - 15u) & 15u];
            let w2 = w[(t - 2u) & 15u];
            let s0 = rotr(w15, 7u) ^ rotr(w15, 18u) ^ (w15 >> 3u);
            let s1 = rotr(w2, 17u) ^ rotr(w2, 19u) ^ (w2 >> 10u);
            wt = w[t & 15u] + s0 + w[(t - 7u) & 15u] + s1;
            w[t & 15u] = wt;
        }
        let big_s1 = rotr(e, 6u) ^ rotr(e, 11u) ^ rotr(e, 25u);
        let ch = (e & f) ^ (~e & g);
        let t1 = h + big_s1 + ch + K[t] + wt;
        let big_s0 = rotr(a, 2u) ^ rotr(a, 13u) ^ rotr(a, 22u);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + big_s0 + maj;
    }
    return array<u32, 8>(a, b, c, d, e, f, g, h);
}

fn add(x: array<u32, 8>, y: array<u32, 8>) -> array<u32, 8> {
    var r: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        r[i] = x[i] + y[i];
    }
    return r;
}

// Word `i` (0 = most significant) of the 128-bit number [0, 0, hi, lo] shifted left by `s`.
fn shifted(hi: u32, lo: u32, s: u32, i: u32) -> u32 {
    var x = array<u32, 5>(0u, 0u, hi, lo, 0u);
    let q = i + (s >> 5u);
    let r = s & 31u;
    if (q > 3u) {
        return 0u;
    }
    let up = x[q] << r;
    let down = select(x[q + 1u] >> (32u - r), 0u, r == 0u);
    return up | down;
}

// The first hash word in display order for the nonce (hi, lo).
fn key(lo: u32, hi: u32) -> u32 {
    let encoding = params.flags & 3u;
    var vhi = 0u;
    var vlo = lo;
    if (encoding == 1u) {
        vlo = bswap(lo);
    } else if (encoding == 2u) {
        vhi = hi;
    } else if (encoding == 3u) {
        vhi = bswap(lo);
        vlo = bswap(hi);
    }
    var b0: array<u32, 16>;
    var b1: array<u32, 16>;
    for (var i = 0u; i < 16u; i++) {
        b0[i] = params.words[i];
        b1[i] = params.words[16u + i];
    }
    for (var i = 0u; i < 4u; i++) {
        let at = params.window + i;
        let bits = shifted(vhi, vlo, params.shift, i);
        if (at < 16u) {
            b0[at] = b0[at] | bits;
        } else {
            b1[at - 16u] = b1[at - 16u] | bits;
        }
    }
    var state = add(params.midstate, rounds(params.pre, b0, params.window));
    if ((params.flags & 8u) != 0u) {
        state = add(state, rounds(state, b1, 0u));
    }
    var second: array<u32, 16>;
    for (var i = 0u; i < 8u; i++) {
        second[i] = state[i];
    }
    second[8] = 0x80000000u;
    second[15] = 256u;
    let out = add(IV, rounds(IV, second, 0u));
    if ((params.flags & 4u) != 0u) {
        return bswap(out[7]);
    }
    return out[0];
}

@compute @workgroup_size(64)
fn scan(@builtin(global_invocation_id) id: vec3<u32>) {
    let first = id.x * params.per_invocation;
    for (var j = 0u; j < params.per_invocation; j++) {
        let offset = first + j;
        if (offset >= params.count) {
            return;
        }
        let lo = params.base_lo + offset;
        let hi = params.base_hi + select(0u, 1u, lo < offset);
        let k = key(lo, hi);
        if (k <= params.threshold) {
            let slot = atomicAdd(&found.count, 1u);
            if (slot < params.capacity) {
                found.items[slot] = vec4<u32>(lo, hi, k, 0u);
            }
        }
    }
}
