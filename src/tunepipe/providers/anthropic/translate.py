"""OpenAI Chat Completions ⇄ Anthropic Messages: the whole translation surface, no I/O.

The gateway speaks OpenAI on both sides, so everything Anthropic-specific lives in this
package and the client only moves bytes. The work is split by direction, one module each:

- :mod:`.request` — an OpenAI chat request as an Anthropic Messages request
  (:func:`to_anthropic_request`).
- :mod:`.response` — an Anthropic answer as an OpenAI completion
  (:func:`to_openai_completion`) or as chunks (:class:`StreamTranslator`).
- :mod:`.report` — an Anthropic request as the OpenAI request it stands for
  (:func:`from_anthropic_request`), for ``/report-anthropic``.

Import from here; the split is an internal matter of module size.
"""

from __future__ import annotations

from tunepipe.providers.anthropic.report import from_anthropic_request
from tunepipe.providers.anthropic.request import DEFAULT_MAX_TOKENS, to_anthropic_request
from tunepipe.providers.anthropic.response import (
    StreamTranslator,
    finish_reason,
    openai_usage,
    to_openai_completion,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "StreamTranslator",
    "finish_reason",
    "from_anthropic_request",
    "openai_usage",
    "to_anthropic_request",
    "to_openai_completion",
]
