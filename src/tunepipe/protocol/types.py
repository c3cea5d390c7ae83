"""Field types shared by request bodies, path and query parameters.

``Text`` is a string without NUL characters. No id, name or label tunepipe stores has one, and
Postgres refuses NUL in a text parameter, so it is refused once, here at the edge, with a 400
that names the field, instead of being checked (or forgotten) in every use case.

``WholeNumber`` is the integer of strict request models: a JSON integer, written ``5`` or ``5.0``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Strict
from pydantic_core import PydanticCustomError


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(no_nul)]


def _no_nul_id(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("unknown_id", "there is nothing by this name: it contains a NUL character")
    return value


Id = Annotated[str, AfterValidator(_no_nul_id)]
"""An identifier (a path segment, a lookup parameter): one with a NUL names nothing, so it is a
404, not a 400 (:mod:`tunepipe.api.errors`)."""


def _whole(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole), Strict()]
"""An integer as JSON has it: ``5``, and ``5.0`` too (JSON Schema's ``integer`` is a number with
no fraction), but never ``5.5``, ``"5"`` or ``true``. Request models are strict (a string is not
coerced into a number or a boolean, as OpenAI's own API refuses ``"n": "2"``); this is the one
leniency they keep, since it is one JSON itself allows."""
