"""The fixed inputs reference.py and iree_roundtrip.py feed an export, and
how they read the output the program prints."""
import array
import math
import re
import struct


def values(i, count, elem):
    """Argument i's `count` deterministic pseudo-random values in [-1, 1),
    rounded to `elem` (f16 or f32)."""
    fmt = "e" if elem == "f16" else "f"
    out = array.array("f")
    for j in range(count):
        x = math.sin(12.9898 * j + 78.233 * (i + 1)) * 43758.5453
        v = 2.0 * (x - math.floor(x)) - 1.0
        out.append(struct.unpack(fmt, struct.pack(fmt, v))[0])
    return out


def printed_values(text):
    """The numbers after `data =` in printMemrefF32's output."""
    return [float(x) for x in re.findall(
        r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|-?nan|-?inf", text.split("data =", 1)[1])]
