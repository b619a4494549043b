//! Criterion benches of the hashing kernel: every backend on the shapes that matter (one tail
//! block, a Bitcoin header, a nonce straddling into a second block), next to the
//! straightforward loop (midstate + two `sha2` compressions per nonce) they must beat.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nonce_kernel::{Backend, Kernel};
use protocol::{Encoding, Layout, Puzzle, Target};
use sha2::digest::generic_array::GenericArray;
use std::hint::black_box;

const NONCES: u64 = 1 << 15;

fn puzzles() -> Vec<(&'static str, Puzzle)> {
    let valid = |p: Result<Puzzle, protocol::PuzzleError>| p.unwrap_or_else(|e| panic!("{e}"));
    vec![
        ("coursework-be32", valid(Puzzle::append(b"COMSM0010cloud".to_vec(), Encoding::Be32, 256))),
        ("header", valid(Puzzle::new(Layout::Header { header: vec![1; 80] }, Target::LeadingZeros(256)))),
        ("len60-be64-two-blocks", valid(Puzzle::append(vec![b'c'; 60], Encoding::Be64, 256))),
    ]
}

fn kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel");
    g.throughput(Throughput::Elements(NONCES));
    for (name, puzzle) in puzzles() {
        for backend in Backend::available() {
            let k = Kernel::new(&puzzle, backend);
            g.bench_function(format!("{name}/{}", backend.name()), |b| {
                b.iter(|| k.scan(black_box(0), NONCES, 0, &mut |_| 0))
            });
        }
    }
    // The straightforward loop: midstate, then two sha2 compressions per nonce.
    g.bench_function("coursework-be32/sha2-straightforward", |b| {
        let mut tail = [0u8; 64];
        tail[..14].copy_from_slice(b"COMSM0010cloud");
        tail[18] = 0x80;
        tail[63] = 18 * 8;
        let iv = [
            0x6a09e667u32,
            0xbb67ae85,
            0x3c6ef372,
            0xa54ff53a,
            0x510e527f,
            0x9b05688c,
            0x1f83d9ab,
            0x5be0cd19,
        ];
        b.iter(|| {
            let mut acc = 0u32;
            for n in 0..NONCES as u32 {
                tail[14..18].copy_from_slice(&n.to_be_bytes());
                let mut s = iv;
                sha2::compress256(&mut s, &[GenericArray::clone_from_slice(&tail)]);
                let mut second = [0u8; 64];
                for (i, w) in s.iter().enumerate() {
                    second[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
                }
                second[32] = 0x80;
                second[62] = 1;
                let mut out = iv;
                sha2::compress256(&mut out, &[GenericArray::clone_from_slice(&second)]);
                acc |= out[0];
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, kernel);
criterion_main!(benches);
