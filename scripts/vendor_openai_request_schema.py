"""Write ``tests/fixtures/openai_chat_request.schema.json``: OpenAI's ``CreateChatCompletionRequest``
and every schema it reaches, cut out of OpenAI's published OpenAPI document into one
self-contained JSON Schema (draft 2020-12) that the request-side property test generates from.

What changes on the way, and why:

* ``$ref``s point into the file's own ``$defs`` instead of ``#/components/schemas``;
* OpenAPI's ``nullable: true`` becomes ``null`` among the types (or an ``anyOf`` with
  ``{"type": "null"}``), so a generator also sends the nulls OpenAI accepts;
* annotations that constrain nothing are left out (``description``, ``title``, ``example(s)``,
  ``deprecated``, ``x-*``, and OpenAPI's ``discriminator``, which restates the ``oneOf``), but only
  where they are keywords: a property *named* ``description`` is kept.

Usage: ``python scripts/vendor_openai_request_schema.py <openai-openapi clone> [<rev>]``. The clone
is a git checkout (or bare git directory) of github.com/openai/openai-openapi; the header of the
output records the commit, its date and the API version.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = "CreateChatCompletionRequest"
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "openai_chat_request.schema.json"
PREFIX = "#/components/schemas/"
ANNOTATIONS = {"description", "title", "example", "examples", "deprecated", "discriminator"}
# Keywords whose value maps names to schemas: its keys are names, not keywords.
NAMED = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}


def _git(repo: str, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={_git_dir(repo)}", *args], capture_output=True, text=True, check=True
    ).stdout


def _git_dir(repo: str) -> str:
    path = Path(repo)
    return str(path / ".git") if (path / ".git").exists() else str(path)


def _reached(schemas: dict[str, Any]) -> list[str]:
    """``ROOT`` and the names of every schema it reaches through ``$ref``, sorted."""
    seen = {ROOT}
    todo: list[Any] = [schemas[ROOT]]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(PREFIX) and ref[len(PREFIX) :] not in seen:
                seen.add(ref[len(PREFIX) :])
                todo.append(schemas[ref[len(PREFIX) :]])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return sorted(seen)


def _with_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also accepts ``null`` (what OpenAPI's ``nullable: true`` says)."""
    kind = schema.get("type")
    if isinstance(kind, str) and not any(k in schema for k in ("$ref", "anyOf", "oneOf", "allOf")):
        out = {**schema, "type": [kind, "null"]}
        if isinstance(schema.get("enum"), list):
            out["enum"] = [*schema["enum"], None]
        return out
    return {"anyOf": [schema, {"type": "null"}]}


def convert(node: Any) -> Any:
    """One schema node as plain JSON Schema (see the module docstring)."""
    if isinstance(node, list):
        return [convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ANNOTATIONS or key.startswith("x-") or key == "nullable":
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = "#/$defs/" + value.removeprefix(PREFIX)
        elif key in NAMED and isinstance(value, dict):
            out[key] = {name: convert(sub) for name, sub in value.items()}
        else:
            out[key] = convert(value)
    return _with_null(out) if node.get("nullable") is True else out


def build(document: dict[str, Any], source: str) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": source,
        "$ref": f"#/$defs/{ROOT}",
        "$defs": {name: convert(schemas[name]) for name in _reached(schemas)},
    }


def main(repo: str, rev: str = "HEAD") -> None:
    commit = _git(repo, "rev-parse", rev).strip()
    date = _git(repo, "show", "-s", "--format=%cs", commit).strip()
    document = json.loads(_git(repo, "show", f"{commit}:openapi.json"))
    source = (
        f"{ROOT} and every schema it reaches, from OpenAI's published OpenAPI document "
        f"(openai/openai-openapi, commit {commit[:7]}, {date}, API version {document['info']['version']}); "
        "nullable written as JSON Schema, annotations left out. "
        "Regenerate with scripts/vendor_openai_request_schema.py."
    )
    OUT.write_text(json.dumps(build(document, source), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({commit[:7]}, {date})")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(*sys.argv[1:3])
