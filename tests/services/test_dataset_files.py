"""Line splitting of the streamed JSONL upload, across any chunk boundaries."""

from __future__ import annotations

import pytest

from tunepipe.services.datasets.upload import iter_lines


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_iter_lines_splits_across_chunks(chunk: int) -> None:
    data = b'{"a":1}\n\n{"b":2}\r\n' + b"x" * 20 + b"\nlast"
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    assert list(iter_lines(chunks, max_line=10)) == [
        (1, b'{"a":1}'),
        (2, b""),
        (3, b'{"b":2}\r'),
        (4, None),
        (5, b"last"),
    ]
