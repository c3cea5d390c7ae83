"""Run in the openai 3.x virtualenv (tests/clients/openai3-requirements.txt) against a live
``tunepipe serve``: a Responses call, a stream, and tool-calling agent runs with the OpenAI
Agents SDK. Prints one JSON object of what each returned, for the test to check.

Usage: ``python openai3_client.py <base_url> <api_key> <model> <agent_model>``
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import openai
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


async def main(base_url: str, api_key: str, model: str, agent_model: str) -> dict[str, Any]:
    set_tracing_disabled(True)  # nothing may leave the machine
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    out: dict[str, Any] = {"openai_version": openai.__version__}

    created = await client.responses.create(
        model=model, input="hello from openai 3", instructions="Be brief."
    )
    out["create"] = {"id": created.id, "status": created.status, "text": created.output_text}

    kinds = []
    async with client.responses.stream(model=model, input="streamed words") as stream:
        async for event in stream:
            kinds.append(event.type)
        final = await stream.get_final_response()
    out["stream"] = {"kinds": kinds, "text": final.output_text, "id": final.id}

    retrieved = await client.responses.retrieve(created.id)
    out["retrieve"] = retrieved.output_text

    agent = Agent(
        name="weather",
        instructions="Use the tool, then report what it said.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model=agent_model, openai_client=client),
    )
    result = await Runner.run(agent, "Oslo")
    out["agent"] = {
        "final_output": result.final_output,
        "items": [item.type for item in result.new_items],
    }
    streamed = Runner.run_streamed(agent, "Bergen")
    events = [event.type async for event in streamed.stream_events()]
    out["agent_streamed"] = {"final_output": streamed.final_output, "events": sorted(set(events))}
    await client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5]))))
