"""Time-ordered ids: valid version-7 UUIDs, unique, and in creation order within a process even
when many are made in the same millisecond."""

from __future__ import annotations

import uuid

from tunepipe.domain.ids import uuid7


def test_uuid7_ids_sort_in_creation_order_within_a_millisecond() -> None:
    ids = [uuid7() for _ in range(20_000)]  # thousands per millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_uuid7_is_an_rfc_9562_version_7_uuid() -> None:
    parsed = uuid.UUID(uuid7())
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_uuid7_sequence_is_never_shared_between_threads() -> None:
    """Threads racing for ids (the interpreter switching as often as it can) never get the same
    time and sequence, and each thread's ids still come out in order."""
    import sys
    import threading

    per_thread, threads = 5_000, 8
    made: list[list[str]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(out: list[str]) -> None:
        start.wait()
        out.extend(uuid7() for _ in range(per_thread))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        pool = [threading.Thread(target=work, args=(out,)) for out in made]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    prefixes = [i.replace("-", "")[:16] for out in made for i in out]  # time, version, sequence
    assert len(set(prefixes)) == per_thread * threads
    assert all(out == sorted(out) for out in made)
