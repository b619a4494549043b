#!/usr/bin/env python3
"""Independent brute force for nonce-cloud's end-to-end tests.

Uses only Python's hashlib, nothing from the Rust code, so the tests compare two
implementations. Writes testdata/golden.json; the file is committed, so tests need no Python.
Regenerate with: python3 testdata/brute_force.py > testdata/golden.json
"""
import hashlib
import json
import struct

FMT = {"be32": ">I", "le32": "<I", "be64": ">Q", "le64": "<Q"}
SPACE = {"be32": 1 << 32, "le32": 1 << 32, "be64": 1 << 64, "le64": 1 << 64}


def digest(block: bytes, enc: str, nonce: int) -> bytes:
    msg = block + struct.pack(FMT[enc], nonce)
    return hashlib.sha256(hashlib.sha256(msg).digest()).digest()


def zeros(h: bytes) -> int:
    n = 0
    for b in h:
        if b == 0:
            n += 8
            continue
        return n + (8 - b.bit_length())
    return n


def lowest(block, enc, d, start, end):
    for n in range(start, end):
        if zeros(digest(block, enc, n)) >= d:
            return n
    return None


BLOCKS = {
    "empty": b"",
    "coursework": b"COMSM0010cloud",
    "len55": b"a" * 55,
    "len56": b"b" * 56,
    "len60": b"c" * 60,
    "len63": b"d" * 63,
    "len64": b"e" * 64,
    "len119": bytes(range(119)),
    "utf8": "ñandú 🦀 nonce-cloud".encode(),
}

cases = []
for name, block in BLOCKS.items():
    for enc in FMT:
        d = 10
        for where in ("bottom", "top"):
            span = 1 << 20
            start = 0 if where == "bottom" else SPACE[enc] - span
            end = start + span
            n = lowest(block, enc, d, start, end)
            cases.append({
                "name": f"{name}-{enc}-{where}",
                "block_hex": block.hex(),
                "encoding": enc,
                "difficulty": d,
                "range": [str(start), str(end)],
                "lowest": None if n is None else str(n),
                "hash": None if n is None else digest(block, enc, n).hex(),
            })

# Exhaustive: every golden nonce of a small range, and ranges that hold none.
exhaustive = []
for name, block, enc, d, start, span in [
    ("coursework-all-d8", b"COMSM0010cloud", "be32", 8, 5000, 6000),
    ("len56-all-d9-le64", b"b" * 56, "le64", 9, (1 << 64) - 8000, 8000),
]:
    golden = [n for n in range(start, start + span) if zeros(digest(block, enc, n)) >= d]
    exhaustive.append({"name": name, "block_hex": block.hex(), "encoding": enc, "difficulty": d,
                       "range": [str(start), str(start + span)], "golden": [str(n) for n in golden]})

none = []
start = 0
block = b"COMSM0010cloud"
while len(none) < 2:
    span, d = 1 << 15, 19
    if lowest(block, "be32", d, start, start + span) is None:
        best = max(zeros(digest(block, "be32", n)) for n in range(start, start + span))
        none.append({"name": f"none-{start}", "block_hex": block.hex(), "encoding": "be32",
                     "difficulty": d, "range": [str(start), str(start + span)], "best_zeros": best})
    start += span

print(json.dumps({"lowest": cases, "exhaustive": exhaustive, "none": none}, indent=1))
