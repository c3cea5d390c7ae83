"""StopMatcher: exact cuts at the first stop string, partial matches held back across feeds."""

from __future__ import annotations

import random

from tunepipe.engine.stops import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> list[str]:
    out = [matcher.feed(p) for p in pieces]
    out.append(matcher.flush())
    return out


def test_stops_cut_exactly_at_a_match_spanning_feeds() -> None:
    m = StopMatcher(("o w",))
    out = feed_all(m, ["Hel", "lo", " wo", "rld"])
    assert "".join(out) == "Hell"
    assert m.stopped
    # The match completed on the third feed; nothing is released after it.
    assert out[2:] == ["", "", ""]


def test_stops_first_match_wins_among_several_stop_strings() -> None:
    m = StopMatcher(("world", "lo"))
    assert m.feed("hello world") == "hel"
    assert m.stopped


def test_stops_partial_match_is_held_back_until_it_is_known() -> None:
    m = StopMatcher(("STOP",))
    assert m.feed("abcST") == "abc"
    assert m.feed("O") == ""
    # "STOX" is not a stop string after all: the held text is released in full.
    assert m.feed("X") == "STOX"
    assert not m.stopped
    assert m.feed("ySTO") == "y"
    assert m.feed("P and more") == ""
    assert m.stopped
    assert m.feed("later") == ""
    assert m.flush() == ""


def test_stops_flush_releases_a_pending_prefix_at_the_end() -> None:
    m = StopMatcher(("</end>",))
    assert m.feed("answer </e") == "answer "
    assert m.flush() == "</e"
    assert not m.stopped


def test_stops_match_at_the_very_start() -> None:
    m = StopMatcher(("ab",))
    assert m.feed("a") == ""
    assert m.feed("bc") == ""
    assert m.stopped
    assert m.flush() == ""


def test_stops_without_stop_strings_pass_text_through() -> None:
    m = StopMatcher(("",))
    assert m.feed("a") == "a"
    assert m.feed("b") == "b"
    assert m.flush() == ""


def test_stops_overlapping_prefixes_are_held_back_until_resolved() -> None:
    # "aab": the first "a" could start "aab" and so could the second; neither may leak early.
    m = StopMatcher(("aab",))
    assert m.feed("xa") == "x"
    assert m.feed("a") == ""
    assert m.feed("a") == "a"  # "aaa": the first "a" can no longer begin a match
    assert m.feed("b") == ""
    assert m.stopped


def test_stops_random_chunkings_match_the_reference_cut() -> None:
    rng = random.Random(0)
    alphabet = "ab c"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        stops = tuple(
            "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))
        )
        found = [i for i in (text.find(s) for s in stops) if i >= 0]
        expected = text[: min(found)] if found else text
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 6))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        m = StopMatcher(stops)
        released: list[str] = []
        for piece in pieces:
            released.append(m.feed(piece))
            # Whatever has been released so far never contains the start of a stop match.
            assert expected.startswith("".join(released)), (text, stops, pieces)
        released.append(m.flush())
        assert "".join(released) == expected, (text, stops, pieces)
        assert m.stopped == bool(found)
