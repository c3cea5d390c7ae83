"""Run in the ecosystem virtualenv (tests/clients/ecosystem-requirements.txt) against a live
``tunepipe serve``, with ``LLM_USER_PATH`` naming a directory whose ``extra-openai-models.yaml``
registers tunepipe's models (test_llm.py writes it): the Python API of ``llm`` — a prompt, a
stream, a tool call and a tool chain, a schema, the async model, and a Responses model. Prints
one JSON object of what each returned, for test_llm.py to check.

Usage: ``python llm_client.py`` (the model ids are those the YAML file registers)
"""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version
from typing import Any

import llm
from pydantic import BaseModel


class Person(BaseModel):
    name: str
    age: int


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _sync() -> dict[str, Any]:
    model = llm.get_model("tunepipe-echo")
    out: dict[str, Any] = {}
    response = model.prompt("hello from llm")
    usage = response.usage()
    out["prompt"] = {"text": response.text(), "input": usage.input, "output": usage.output}
    out["stream"] = list(model.prompt("streamed from llm", stream=True))

    called = model.prompt("weather in Oslo", tools=[get_weather])
    called.text()
    out["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in called.tool_calls()]
    chain = llm.get_model("tunepipe-agent").chain("Bergen", tools=[get_weather])
    out["chain"] = chain.text()

    out["schema"] = json.loads(model.prompt("Ada", schema=Person).text())
    out["schema_dsl"] = json.loads(model.prompt("Grace", schema=llm.schema_dsl("name, age int")).text())
    out["responses"] = llm.get_model("tunepipe-responses").prompt("hello responses").text()
    return out


async def _async() -> dict[str, Any]:
    model = llm.get_async_model("tunepipe-echo")
    text = await model.prompt("async llm").text()
    pieces = [chunk async for chunk in model.prompt("async stream")]
    return {"async": text, "astream": pieces}


def main() -> dict[str, Any]:
    out: dict[str, Any] = {"version": version("llm")}
    out.update(_sync())
    out.update(asyncio.run(_async()))
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
