"""Identifiers for log records: UUIDs in the version-7 layout (RFC 9562), ordered by time.

A random (version-4) id lands each new row at a random place in every index keyed by it, so a
busy log table dirties pages all over its primary key; time-ordered ids append, which made the
log writer measurably cheaper (docs/performance.md). The text form is an ordinary UUID.

Ids must be unique, not secret (reading a log takes the project's key), so the random part comes
from :mod:`random`, which is seeded from the OS and reseeded in forked workers, and needs no
system call per id.

Within one process, ids made in the same millisecond still sort in the order they were made
(RFC 9562's method 1: ``rand_a`` counts up from a random start), so "oldest first" by id holds
for queued jobs created together. The sequence is shared by every thread of the process (the
event loop, the log writer, the database threads), so it is advanced under a lock: two threads
never get the same sequence number, whatever the interpreter's switching does.
"""

from __future__ import annotations

import random
import threading
import time

_RAND_B_BITS = 62


_last_ms = 0
_counter = 0
_lock = threading.Lock()


def uuid7() -> str:
    """48 bits of Unix milliseconds, the version, a 12-bit sequence, 62 random bits and the variant."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:  # a new millisecond: start low enough to leave room to count
            _last_ms, _counter = ms, random.getrandbits(11)
        elif _counter >= 0xFFF:  # the sequence is spent: borrow the next millisecond (RFC 9562)
            _last_ms, _counter = _last_ms + 1, random.getrandbits(11)
        else:  # the same millisecond, or the clock stepped back: keep counting
            _counter += 1
        at, sequence = _last_ms, _counter
    value = (
        (at & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | sequence << 64  # rand_a: the sequence
        | 0b10 << 62  # RFC 9562 variant
        | random.getrandbits(_RAND_B_BITS)  # rand_b
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
