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
