"""Run in the ecosystem virtualenv (tests/clients/ecosystem-requirements.txt) against a live
``tunepipe serve``: instructor over the openai SDK, asking for pydantic objects in TOOLS mode
(a forced tool call), JSON mode (JSON in the message text), JSON_SCHEMA mode (a json_schema
``response_format``), asynchronously, and as a stream of partial objects. Prints one JSON object
of what each returned, for test_instructor.py to check.

Usage: ``python instructor_client.py <base_url> <api_key> <echo_model> <tool_model> <extract_model>``

The fake provider decides what each model answers: ``tool_model`` fills every string argument
of the tool it is given with the user's text, ``extract_model`` reads a person out of the text.
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version
from typing import Any

import instructor
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel


class Place(BaseModel):
    name: str
    country: str


class Person(BaseModel):
    name: str
    age: int
    city: str


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def _sync(base_url: str, api_key: str, models: dict[str, str]) -> dict[str, Any]:
    openai = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    out: dict[str, Any] = {}
    tools = instructor.from_openai(openai, mode=instructor.Mode.TOOLS)
    place, completion = tools.chat.completions.create_with_completion(
        model=models["tool"], response_model=Place, messages=_user("Tromso"), max_retries=0
    )
    out["tools"] = {
        "object": place.model_dump(),
        "tool_name": completion.choices[0].message.tool_calls[0].function.name,
    }
    partials = tools.chat.completions.create_partial(
        model=models["tool"], response_model=Place, messages=_user("Lofoten"), max_retries=0
    )
    out["partial"] = [p.model_dump() for p in partials]

    as_json = instructor.from_openai(openai, mode=instructor.Mode.JSON)
    person = as_json.chat.completions.create(
        model=models["extract"],
        response_model=Person,
        messages=_user("Ada is 36 and lives in London"),
        max_retries=0,
    )
    out["json"] = person.model_dump()

    schema = instructor.from_openai(openai, mode=instructor.Mode.JSON_SCHEMA)
    echoed = schema.chat.completions.create(
        model=models["echo"], response_model=Place, messages=_user("Bergen"), max_retries=0
    )
    out["json_schema"] = echoed.model_dump()
    return out


async def _async(base_url: str, api_key: str, models: dict[str, str]) -> dict[str, Any]:
    client = instructor.from_openai(
        AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0), mode=instructor.Mode.TOOLS
    )
    place = await client.chat.completions.create(
        model=models["tool"], response_model=Place, messages=_user("Svalbard"), max_retries=0
    )
    return {"async_tools": place.model_dump()}


def main(base_url: str, api_key: str, echo: str, tool: str, extract: str) -> dict[str, Any]:
    models = {"echo": echo, "tool": tool, "extract": extract}
    out: dict[str, Any] = {"version": version("instructor")}
    out.update(_sync(base_url, api_key, models))
    out.update(asyncio.run(_async(base_url, api_key, models)))
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:6])))
