"""Identifiers for log records: UUIDs in the version-7 layout (RFC 9562), ordered by time.

A random (version-4) id lands each new row at a random place in every index keyed by it, so a
busy log table dirties pages all over its primary key; time-ordered ids append, which made the
log writer measurably cheaper (docs/performance.md). The text form is an ordinary UUID.

Ids must be unique, not secret (reading a log takes the project's key), so the random part comes
from :mod:`random`, which is seeded from the OS and reseeded in forked workers, and needs no
system call per id.
"""

from __future__ import annotations

import random
import time

_RAND_B_BITS = 62


def uuid7() -> str:
    """48 bits of Unix milliseconds, the version, 12 + 62 random bits and the variant."""
    ms = time.time_ns() // 1_000_000
    rand = random.getrandbits(12 + _RAND_B_BITS)
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | (rand >> _RAND_B_BITS) << 64  # rand_a
        | 0b10 << 62  # RFC 9562 variant
        | rand & ((1 << _RAND_B_BITS) - 1)  # rand_b
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
