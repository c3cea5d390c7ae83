"""Run in the ecosystem virtualenv (tests/clients/ecosystem-requirements.txt) against a live
``tunepipe serve``: langchain-openai's ``ChatOpenAI`` invoked, streamed, bound to a tool, asked
for structured output, driven asynchronously, and once over the Responses API. Prints one JSON
object of what each returned, for test_langchain.py to check.

Usage: ``python langchain_client.py <base_url> <api_key> <model> <agent_model>``
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version
from typing import Any

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]


def _sync(llm: ChatOpenAI, agent: ChatOpenAI) -> dict[str, Any]:
    out: dict[str, Any] = {}
    answer = llm.invoke("hello from langchain")
    out["invoke"] = {
        "text": answer.content,
        "total_tokens": (answer.usage_metadata or {}).get("total_tokens"),
        "model_name": answer.response_metadata.get("model_name"),
    }
    out["stream"] = [chunk.content for chunk in llm.stream("streamed from langchain") if chunk.content]

    called = llm.bind_tools([get_weather]).invoke("weather in Oslo")
    out["tools"] = [{"name": c["name"], "args": c["args"]} for c in called.tool_calls]

    # One turn of an agent loop by hand: the model asks, the tool answers, the model replies.
    messages: list[Any] = [HumanMessage("Bergen")]
    bound = agent.bind_tools([get_weather])
    asked = bound.invoke(messages)
    messages.append(asked)
    for call in asked.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    out["agent"] = {"asked": asked.tool_calls[0]["args"], "final": bound.invoke(messages).content}

    person = llm.with_structured_output(Person).invoke("Ada")
    out["structured"] = person.model_dump() if isinstance(person, Person) else None
    return out


async def _async(llm: ChatOpenAI) -> dict[str, Any]:
    answer = await llm.ainvoke("hello async langchain")
    pieces = [chunk.content async for chunk in llm.astream("async stream") if chunk.content]
    person = await llm.with_structured_output(Person).ainvoke("Grace")
    return {
        "ainvoke": answer.content,
        "astream": pieces,
        "astructured": person.model_dump() if isinstance(person, Person) else None,
    }


def main(base_url: str, api_key: str, model: str, agent_model: str) -> dict[str, Any]:
    def chat(name: str, **kwargs: Any) -> ChatOpenAI:
        return ChatOpenAI(model=name, base_url=base_url, api_key=api_key, max_retries=0, **kwargs)

    llm = chat(model)
    out: dict[str, Any] = {"version": version("langchain-openai")}
    out.update(_sync(llm, chat(agent_model)))
    out.update(asyncio.run(_async(llm)))

    responses = chat(model, use_responses_api=True)
    answer = responses.invoke("hello responses")
    out["responses"] = {"text": answer.text, "id": answer.response_metadata.get("id")}
    out["responses_stream"] = "".join(
        chunk.text for chunk in responses.stream("streamed responses") if chunk.text
    )
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
