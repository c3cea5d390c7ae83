"""The ``anypath`` path convertor: Starlette's ``path``, but a line break is a character too.

A ``{name}`` parameter takes anything but ``/``, a line break included; Starlette's ``path``
takes anything but a line break (its ``.*`` is compiled without DOTALL). So
``GET /models/a%0Ab`` found no ``GET /models/{model_id:path}`` and fell to
``DELETE /models/{slug}``: a 405 where nothing by that name is a 404. Routes whose last parameter
may hold a ``/`` use ``{name:anypath}``; importing this module registers it (Starlette keeps its
convertors in one registry that route paths are compiled against).
"""

from __future__ import annotations

from starlette.convertors import PathConvertor, register_url_convertor


class AnyPathConvertor(PathConvertor):
    regex = "(?s:.*)"


register_url_convertor("anypath", AnyPathConvertor())
