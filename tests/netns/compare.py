#!/usr/bin/env python3
"""Compares two `strata run --logits-out` files (raw native-endian float32,
n_vocab per generated token).

Usage: compare.py EXPECTED ACTUAL TOLERANCE

Prints the largest absolute difference and the number of values; exits 1 if
the files differ in length, are empty, hold a NaN, or differ by more than
TOLERANCE anywhere.
"""
import array
import math
import sys


def floats(path):
    values = array.array("f")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) % values.itemsize:
        sys.exit(f"compare.py: {path}: {len(data)} bytes is not a whole number of float32")
    values.frombytes(data)
    return values


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    expected, actual, tolerance = floats(sys.argv[1]), floats(sys.argv[2]), float(sys.argv[3])
    if len(expected) == 0 or len(expected) != len(actual):
        print(f"logits: {len(actual)} values, expected {len(expected)}")
        return 1
    worst = max(abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf for a, b in zip(expected, actual))
    ok = worst <= tolerance
    print(f"max |dlogit| {worst:.2e} over {len(expected)} logits{'' if ok else f' > {tolerance:g}'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
