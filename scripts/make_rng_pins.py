#!/usr/bin/env python3
"""Pinned outputs of `bert-rng`, computed from the published algorithms, not from our Rust code.

- xoshiro256** 1.0 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro256starstar.c):
  result = rotl(s[1] * 5, 7) * 9; t = s[1] << 17; s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2];
  s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45).
- SplitMix64 (https://prng.di.unimi.it/splitmix64.c) finaliser on x + 0x9E3779B97F4A7C15.
- Seeding as `bert-rng` documents it: word k = splitmix64(seed + (k + 1) * 0x9E3779B97F4A7C15).
- mix_seed(parts) = fold(0x243F6A8885A308D3, acc -> splitmix64(acc ^ splitmix64(part))).
- below(n): Lemire's multiply-shift with rejection (reject while low < (2^64 - n) mod n).
- normal(): Box-Muller on u1 = 1 - next_f64(), u2 = next_f64(), cosine branch.

Prints the Rust constants pasted into `crates/rng/src/lib.rs`'s `stream_is_frozen`.
Usage: python3 scripts/make_rng_pins.py   (standard library only)
"""
import math

M = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(x):
    z = (x + GOLDEN) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


class Xoshiro:
    def __init__(self, seed):
        self.s = [splitmix64((seed + (k + 1) * GOLDEN) & M) for k in range(4)]

    def next_u64(self):
        s = self.s
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def next_f64(self):
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def below(self, n):
        while True:
            m = self.next_u64() * n
            if (m & M) >= ((1 << 64) - n) % n:
                return m >> 64

    def normal(self):
        u1 = 1.0 - self.next_f64()
        u2 = self.next_f64()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def mix_seed(parts):
    acc = 0x243F6A8885A308D3
    for p in parts:
        acc = splitmix64(acc ^ splitmix64(p))
    return acc


r = Xoshiro(42)
print("next_u64(seed 42):", ", ".join(f"0x{r.next_u64():016X}" for _ in range(4)))
print("mix_seed([1, 2, 3]):", f"0x{mix_seed([1, 2, 3]):016X}")
print("mix_seed([]):", f"0x{mix_seed([]):016X}")
r = Xoshiro(7)
print("below(1000) x6 (seed 7):", [r.below(1000) for _ in range(6)])
r = Xoshiro(7)
print("below(3) x6 (seed 7):", [r.below(3) for _ in range(6)])
r = Xoshiro(9)
print("normal() x3 (seed 9):", [repr(r.normal()) for _ in range(3)])
