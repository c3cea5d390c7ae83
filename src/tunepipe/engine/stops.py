"""Stop strings, cut exactly at the first match, and held back while streaming.

Text that could be the beginning of a stop string is not released until the next tokens show
whether it is one, so a partial match never leaks into a chunk the client already has.
"""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._text = ""
        self._released = 0
        self.stopped = False

    def feed(self, new_text: str) -> str:
        """Add generated text; return what is now safe to show (and set :attr:`stopped` at a match)."""
        if self.stopped:
            return ""
        self._text += new_text
        if not self._stops:
            out = self._text[self._released :]
            self._released = len(self._text)
            return out
        # Only the tail can hold a new match: search from just before the released point.
        start = max(0, self._released - max(len(s) for s in self._stops) + 1)
        cut = min((i for i in (self._text.find(s, start) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out = self._text[self._released : cut]
            self._released = cut
            return out
        safe = len(self._text) - self._pending_prefix()
        out = self._text[self._released : safe]
        self._released = max(self._released, safe)
        return out

    def _pending_prefix(self) -> int:
        """Length of the longest tail of the text that begins some stop string."""
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(self._text)), best, -1):
                if self._text.endswith(stop[:k]):
                    best = k
                    break
        return best

    def flush(self) -> str:
        """At the end of generation: whatever was held back is not a stop string after all."""
        if self.stopped:
            return ""
        out = self._text[self._released :]
        self._released = len(self._text)
        return out
