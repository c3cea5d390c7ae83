"""A fake LLM provider speaking the OpenAI and Anthropic wire formats over real HTTP.

Behaviour is chosen by the request, so tests need no set-up calls:

* the reply echoes the last user text (``"echo: <text>"``; choice ``i`` of ``n`` gets ``[i] ``);
* with ``tools`` (and ``tool_choice`` not ``none``) it calls the chosen or first tool with
  ``{"echo": <text>}``;
* models named ``fail-<status>`` answer that status with an OpenAI/Anthropic error body;
* ``fail-midstream`` streams two chunks, then breaks the stream with an error event;
* ``slow-<ms>`` waits that long first;
* ``teacher-extract`` acts as a teacher model for distillation tests: it answers the
  compact JSON ``{"name", "age", "city"}`` read from the last user text (the first number is
  the age, the capitalised word after in/from/to the city, the first other capitalised word
  the name).

Usage counts words, so tests can check token accounting. Every request is recorded with its
headers; ``GET /_requests`` returns them and ``DELETE /_requests`` clears them.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from aiohttp import web

REQUESTS = web.AppKey("requests", list)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _words(text: str) -> int:
    return len(text.split())


async def _behaviour(model: str) -> int | None:
    """Sleep for ``slow-`` models; return the status a ``fail-`` model asks for."""
    if model.startswith("slow-"):
        await asyncio.sleep(int(model.split("-", 1)[1]) / 1000)
    if model.startswith("fail-") and model[5:].isdigit():
        return int(model[5:])
    return None


# ---------------------------------------------------------------- OpenAI


_NOT_NAMES = frozenset({"In", "Meet", "From", "To", "Please", "Hello", "The", "This", "Our"})


def extract_person(text: str) -> str:
    """The teacher's answer for ``text`` (see the module docstring)."""
    words = re.findall(r"[A-Za-z]+|\d+", text)
    age = next((int(w) for w in words if w.isdigit()), None)
    city = next(
        (
            b
            for a, b in zip(words, words[1:], strict=False)
            if a.lower() in ("in", "from", "to") and b[:1].isupper()
        ),
        None,
    )
    name = next((w for w in words if w[:1].isupper() and w != city and w not in _NOT_NAMES), None)
    return orjson.dumps({"name": name, "age": age, "city": city}).decode()


def _openai_reply(body: dict[str, Any], index: int) -> tuple[dict[str, Any], str]:
    messages = body.get("messages") or []
    last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    if body.get("model") == "teacher-extract":
        return {"role": "assistant", "content": extract_person(last_user)}, "stop"
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if tools and choice != "none":
        name = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["function"]["name"]
        call = {
            "id": f"call_{index}",
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps({"echo": last_user}).decode()},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    prefix = f"[{index}] " if (body.get("n") or 1) > 1 else ""
    content = f"{prefix}echo: {last_user}"
    stop = body.get("stop")
    for s in [stop] if isinstance(stop, str) else stop or []:
        if s in content:
            return {"role": "assistant", "content": content[: content.index(s)]}, "stop"
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens and _words(content) > max_tokens:
        return {"role": "assistant", "content": " ".join(content.split()[:max_tokens])}, "length"
    return {"role": "assistant", "content": content}, "stop"


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(_words(_text(m.get("content"))) for m in body.get("messages") or []) or 1


def _completion_tokens(message: dict[str, Any]) -> int:
    if message.get("tool_calls"):
        return sum(_words(c["function"]["arguments"]) for c in message["tool_calls"])
    return _words(message.get("content") or "")


def _error(status: int, message: str) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": "model", "code": "fake_error"}
    }
    return web.json_response(body, status=status)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[REQUESTS].append({"path": request.path, "headers": dict(request.headers), "body": body})
    if request.headers.get("Authorization") == "Bearer reject-me":
        return _error(401, "Incorrect API key provided")
    status = await _behaviour(body["model"])
    if status is not None:
        return _error(status, f"fake failure {status}")
    n = body.get("n") or 1
    replies = [_openai_reply(body, i) for i in range(n)]
    completion_tokens = sum(_completion_tokens(m) for m, _ in replies)
    usage = {
        "prompt_tokens": _prompt_tokens(body),
        "completion_tokens": completion_tokens,
        "total_tokens": _prompt_tokens(body) + completion_tokens,
    }
    cid = f"chatcmpl-fake{time.time_ns()}"
    if not body.get("stream"):
        return web.json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {"index": i, "message": m, "finish_reason": r, "logprobs": None}
                    for i, (m, r) in enumerate(replies)
                ],
                "usage": usage,
                "system_fingerprint": "fp_fake",
            }
        )
    return await _openai_stream(request, body, cid, replies, usage)


async def _openai_stream(
    request: web.Request,
    body: dict[str, Any],
    cid: str,
    replies: list[tuple[dict[str, Any], str]],
    usage: dict[str, Any],
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
            "choices": choices,
        }
        if include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

    for i, (message, reason) in enumerate(replies):
        await send([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            args = call["function"]["arguments"]
            head = {
                "index": 0,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            await send([{"index": i, "delta": {"tool_calls": [head]}, "finish_reason": None}])
            for part in (args[: len(args) // 2], args[len(args) // 2 :]):
                await send(
                    [
                        {
                            "index": i,
                            "delta": {"tool_calls": [{"index": 0, "function": {"arguments": part}}]},
                            "finish_reason": None,
                        }
                    ]
                )
        else:
            words = (message["content"] or "").split(" ")
            for k, word in enumerate(words):
                await send(
                    [
                        {
                            "index": i,
                            "delta": {"content": word if k == 0 else " " + word},
                            "finish_reason": None,
                        }
                    ]
                )
                if body["model"] == "fail-midstream" and k == 1:
                    await resp.write(
                        b'data: {"error": {"message": "upstream exploded", "type": "server_error"}}\n\n'
                    )
                    return resp
        await send([{"index": i, "delta": {}, "finish_reason": reason}])
    if include_usage:
        await send([], usage=usage)
    await resp.write(b"data: [DONE]\n\n")
    return resp


# ---------------------------------------------------------------- Anthropic


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[REQUESTS].append({"path": request.path, "headers": dict(request.headers), "body": body})
    if request.headers.get("x-api-key") == "reject-me":
        return web.json_response(
            {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
            status=401,
        )
    status = await _behaviour(body["model"])
    if status is not None:
        return web.json_response(
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": f"fake failure {status}"},
            },
            status=status,
        )
    last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {"content": ""})
    content = last["content"]
    text = (
        content
        if isinstance(content, str)
        else " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    )
    if not text and isinstance(content, list):
        text = " ".join(str(b.get("content", "")) for b in content if b.get("type") == "tool_result")
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {}
    blocks: list[dict[str, Any]]
    if tools and choice.get("type") != "none":
        name = choice.get("name") or tools[0]["name"]
        blocks = [{"type": "tool_use", "id": "toolu_fake1", "name": name, "input": {"echo": text}}]
        stop_reason = "tool_use"
    else:
        reply = f"echo: {text}"
        stop_reason = "end_turn"
        for s in body.get("stop_sequences") or []:
            if s in reply:
                reply, stop_reason = reply[: reply.index(s)], "stop_sequence"
                break
        blocks = [{"type": "text", "text": reply}]
    usage = {
        "input_tokens": _words(orjson.dumps(body["messages"]).decode()) // 4 + 1,
        "output_tokens": _words(text) + 1,
    }
    message = {
        "id": f"msg_fake{time.time_ns()}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return web.json_response(message)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)

    async def event(kind: str, data: dict[str, Any]) -> None:
        await resp.write(
            f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"
        )

    await event(
        "message_start",
        {
            "message": {
                **message,
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1},
            }
        },
    )
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            await event("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
            for k, word in enumerate(block["text"].split(" ")):
                await event(
                    "content_block_delta",
                    {"index": i, "delta": {"type": "text_delta", "text": word if k == 0 else " " + word}},
                )
        else:
            await event("content_block_start", {"index": i, "content_block": {**block, "input": {}}})
            args = orjson.dumps(block["input"]).decode()
            for part in (args[: len(args) // 2], args[len(args) // 2 :]):
                await event(
                    "content_block_delta",
                    {"index": i, "delta": {"type": "input_json_delta", "partial_json": part}},
                )
        await event("content_block_stop", {"index": i})
    await event(
        "message_delta",
        {
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    await event("message_stop", {})
    return resp


# ---------------------------------------------------------------- plumbing


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[REQUESTS])


async def clear_requests(request: web.Request) -> web.Response:
    request.app[REQUESTS].clear()
    return web.json_response({"cleared": True})


def make_app() -> web.Application:
    app = web.Application()
    app[REQUESTS] = []
    for prefix in ("/v1", "/openai/v1"):
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_get("/_requests", list_requests)
    app.router.add_delete("/_requests", clear_requests)
    return app


@contextmanager
def running_fake_provider(port: int = 0) -> Iterator[str]:
    """Serve the fake on a loopback port in a background thread; yield its base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{holder['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
