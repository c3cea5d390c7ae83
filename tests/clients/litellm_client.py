"""Run in the ecosystem virtualenv (tests/clients/ecosystem-requirements.txt) against a live
``tunepipe serve``: the litellm SDK with tunepipe as an OpenAI-compatible ``api_base`` — a
completion, a stream, a tool call, a pydantic ``response_format``, the async forms, an
embedding and the Responses API. Prints one JSON object of what each returned, for
test_litellm.py to check.

Usage: ``python litellm_client.py <base_url> <api_key> <model> <embedding_model>``
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from importlib.metadata import version
from typing import Any

# Before litellm is imported: its price table from the package, never from the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["HF_HUB_OFFLINE"] = "1"

import litellm  # noqa: E402
from pydantic import BaseModel  # noqa: E402

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]


def _sync(call: dict[str, Any]) -> dict[str, Any]:
    def user(text: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": text}]

    out: dict[str, Any] = {}
    answer = litellm.completion(**call, messages=user("hello from litellm"))
    out["completion"] = {
        "text": answer.choices[0].message.content,
        "total_tokens": answer.usage.total_tokens,
    }
    chunks = litellm.completion(**call, messages=user("streamed from litellm"), stream=True)
    out["stream"] = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]

    called = litellm.completion(**call, messages=user("weather in Oslo"), tools=[WEATHER])
    tool_calls = called.choices[0].message.tool_calls or []
    out["tools"] = {
        "finish_reason": called.choices[0].finish_reason,
        "calls": [
            {"name": c.function.name, "arguments": json.loads(c.function.arguments)} for c in tool_calls
        ],
    }
    structured = litellm.completion(**call, messages=user("Ada"), response_format=Person)
    out["structured"] = Person.model_validate_json(structured.choices[0].message.content).model_dump()
    return out


async def _async(call: dict[str, Any]) -> dict[str, Any]:
    answer = await litellm.acompletion(**call, messages=[{"role": "user", "content": "async litellm"}])
    chunks = await litellm.acompletion(
        **call, messages=[{"role": "user", "content": "async stream"}], stream=True
    )
    pieces = [c.choices[0].delta.content async for c in chunks if c.choices and c.choices[0].delta.content]
    return {"acompletion": answer.choices[0].message.content, "astream": pieces}


def main(base_url: str, api_key: str, model: str, embedding_model: str) -> dict[str, Any]:
    litellm.disable_hf_tokenizer_download = True
    call: dict[str, Any] = {"model": f"openai/{model}", "api_base": base_url, "api_key": api_key}
    out: dict[str, Any] = {"version": version("litellm")}
    out.update(_sync(call))
    out.update(asyncio.run(_async(call)))
    embedded = litellm.embedding(**{**call, "model": f"openai/{embedding_model}"}, input=["hello vectors"])
    out["embedding"] = {
        "vector": embedded.data[0]["embedding"],
        "prompt_tokens": embedded.usage.prompt_tokens,
    }
    response = litellm.responses(**call, input="hello responses")
    out["responses"] = {
        "id": response.id,
        "status": response.status,
        "text": response.output[0].content[0].text,
    }
    events = litellm.responses(**call, input="streamed responses", stream=True)
    kinds, text = [], ""
    for event in events:
        kinds.append(str(getattr(event.type, "value", event.type)))
        if kinds[-1] == "response.output_text.delta":
            text += event.delta
    out["responses_stream"] = {"kinds": kinds, "text": text}
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
