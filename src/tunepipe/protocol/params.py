"""Where in the caller's JSON a validation error points, spelled as OpenAI spells ``param``
(``messages[0].content``)."""

from __future__ import annotations

from typing import Any


def field_path(loc: tuple[int | str, ...], body: Any) -> list[int | str]:
    """The path of the offending field in ``body``.

    Pydantic's ``loc`` also holds discriminator tags (``user``) and union-member labels
    (``str``, ``literal[...]``) that name no field; walking the body alongside drops them. A
    last segment that is not in the body is a missing required field and is kept.
    """
    path: list[int | str] = []
    node = body
    for i, seg in enumerate(loc):
        if isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            node = node[seg]
        elif isinstance(node, dict) and isinstance(seg, str) and (seg in node or i == len(loc) - 1):
            node = node.get(seg)
        else:
            continue
        path.append(seg)
    return path


def spelled(path: list[int | str]) -> str:
    """``["messages", 0, "content"]`` → ``messages[0].content``."""
    return "".join(f"[{seg}]" if isinstance(seg, int) else f".{seg}" for seg in path).lstrip(".")


def param_of(loc: tuple[int | str, ...], body: Any) -> str:
    return spelled(field_path(loc, body))
