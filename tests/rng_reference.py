"""minidl's random stream (backend.Generator) written out independently, with Python integers
and floats, for tests that pin values drawn from it."""

import math

# The counter-based scheme of backend.Generator, written out with Python integers and floats:
# splitmix64 (Steele, Lea & Flood 2014) keyed by (seed, draw counter), one word per element.
M64, G = 2**64 - 1, 0x9E3779B97F4A7C15


def mix(z):
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def reference_words(seed, counter, n):
    key = mix(mix(seed) + (counter + 1) * G)
    return [mix(key + (i + 1) * G) for i in range(n)]


def reference_uniforms(seed, counter, n, bits):
    return [(w >> (64 - bits)) / 2**bits for w in reference_words(seed, counter, n)]


def reference_normals(seed, counter, n, bits):
    u = reference_uniforms(seed, counter, n + n % 2, bits)
    out = []
    for j in range(0, len(u), 2):
        r = math.sqrt(-2 * math.log1p(-u[j]))
        out += [r * math.cos(2 * math.pi * u[j + 1]), r * math.sin(2 * math.pi * u[j + 1])]
    return out[:n]
