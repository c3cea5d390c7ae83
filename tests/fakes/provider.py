"""A fake LLM provider speaking the OpenAI and Anthropic wire formats over real HTTP.

Behaviour is chosen by the request, so tests need no set-up calls:

* the reply echoes the last user text (``"echo: <text>"``; choice ``i`` of ``n`` gets ``[i] ``);
* with ``tools`` (and ``tool_choice`` not ``none``) it calls the chosen or first tool with
  ``{"echo": <text>}``;
* models named ``fail-<status>`` answer that status with an OpenAI/Anthropic error body;
* ``fail-midstream`` streams two chunks, then breaks the stream with an error event;
  ``stall-midstream`` streams two chunks, then nothing more (never ends);
  ``cut-midstream`` streams two chunks, then drops the connection;
* ``slow-<ms>`` waits that long first; a client that hangs up meanwhile ends the wait, and the
  recorded request says so (``"hung_up_after_ms"``), on every endpoint;
* ``teacher-extract`` acts as a teacher model for distillation tests: it answers the
  compact JSON ``{"name", "age", "city"}`` read from the last user text (the first number is
  the age, the capitalised word after in/from/to the city, the first other capitalised word
  the name);
* ``judge-*`` models are LLM judges (criteria and head-to-head), reading the judged output from
  the ``<output>`` (or ``<response_1>``/``<response_2>``) section of the prompt and answering in
  the form asked: the JSON schema of ``response_format``, a forced tool call, or plain text.
  ``judge-json`` passes an output that is a JSON object and prefers such a response;
  ``judge-polite`` passes an output with "please" or "thank", ``judge-contains-<text>`` one
  that contains ``<text>``; ``judge-first`` passes everything
  and always prefers response 1 (a position-biased judge); ``judge-garbage`` answers with no
  verdict. Asked for logprobs, a verdict comes with top logprobs giving it probability 0.9.
  ``slow-<ms>-<model>`` waits, then acts as ``<model>``;
* ``tool-then-answer`` acts as an agent's model: it calls the first tool (every string
  parameter set to the last user text) until a tool has answered, then answers
  ``"tool said: <the last tool output>"``;
* ``POST /v1/responses`` is OpenAI's Responses API, echoing the last user text the same way
  (``fail-<status>`` and ``slow-<ms>`` apply), streamed as OpenAI streams it when asked; it
  keeps what it answered (unless ``store`` is false) for ``GET``/``DELETE
  /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``;
* ``response_format`` of type ``json_schema`` gets an instance of the schema (strings are the
  last user text);
* ``functions`` (legacy function calling, ``function_call`` not ``none``) get a
  ``function_call`` with ``{"echo": <text>}``; a model whose name ends in ``-error`` answers 404
  with OpenAI's wording for a model that does not exist;
* ``flaky-<k>-<status>`` fails its first ``k`` calls for a given last user text with
  ``<status>`` (a 429 says ``retry-after-ms: 100`` and ``Retry-After: 1``), then answers as an
  echo model: tests use a fresh text to get a fresh count.

Usage counts words, so tests can check token accounting. Every request is recorded with its
headers; ``GET /_requests`` returns them and ``DELETE /_requests`` clears them.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from aiohttp import web

REQUESTS = web.AppKey("requests", list)
FLAKY = web.AppKey("flaky", dict)
# Options of one fake: a latency before every OpenAI-format answer, and the only keys it accepts.
LATENCY_MS = web.AppKey("latency_ms", int)
KEYS = web.AppKey("keys", frozenset)
ENTRY = web.RequestKey("entry", dict)  # a request's record in REQUESTS, on the request itself


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _words(text: str) -> int:
    return len(text.split())


async def _wait(ms: int, request: web.Request | None) -> None:
    """Sleep ``ms``; with ``request``, stop early if its client hangs up, and record when."""
    if request is None:
        await asyncio.sleep(ms / 1000)
        return
    started = time.monotonic()
    deadline = started + ms / 1000
    while (left := deadline - time.monotonic()) > 0:
        if request.transport is None or request.transport.is_closing():
            request[ENTRY]["hung_up_after_ms"] = round((time.monotonic() - started) * 1000)
            return
        await asyncio.sleep(min(left, 0.01))


async def _behaviour(model: str, request: web.Request | None = None) -> int | None:
    """Sleep for ``slow-`` models; return the status a ``fail-`` model asks for."""
    if model.startswith("slow-"):
        await _wait(int(model.split("-")[1]), request)
    if model.startswith("fail-") and model[5:].isdigit():
        return int(model[5:])
    return None


def _unslowed(model: str) -> str:
    """``slow-<ms>-<model>`` acts as ``<model>``."""
    parts = model.split("-", 2)
    return parts[2] if model.startswith("slow-") and len(parts) == 3 else model


def _section(text: str, name: str) -> str:
    m = re.search(rf"<{name}>\n(.*?)\n</{name}>", text, re.S)
    return m.group(1) if m else ""


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False


def _passes(judge: str, output: str) -> bool:
    if judge == "judge-polite":
        return any(w in output.lower() for w in ("please", "thank"))
    if judge == "judge-first":
        return True
    if judge.startswith("judge-contains-"):
        return judge.removeprefix("judge-contains-") in output
    return _is_json_object(output)


def judge_verdict(judge: str, prompt: str) -> dict[str, str] | None:
    """What a ``judge-*`` model decides about the prompt: ``{explanation, judgement}``."""
    if judge == "judge-garbage":
        return None
    if "<response_1>" in prompt:
        first, second = _section(prompt, "response_1"), _section(prompt, "response_2")
        if judge == "judge-first":
            return {"explanation": "The first one reads better.", "judgement": "response 1"}
        a, b = _is_json_object(first), _is_json_object(second)
        choice = "tie" if a == b else "response 1" if a else "response 2"
        return {"explanation": f"Valid JSON: response 1 {a}, response 2 {b}.", "judgement": choice}
    output = _section(prompt, "output")
    ok = _passes(judge, output)
    return {"explanation": f"{judge} looked at {output[:40]!r}.", "judgement": "PASS" if ok else "FAIL"}


def _logprobs(content: str, verdict: str) -> dict[str, Any]:
    """Tokens of a judge's JSON answer: the verdict a token of its own with its top logprobs."""
    at = content.index(verdict, content.index('"judgement"'))
    other = "FAIL" if verdict == "PASS" else "PASS"
    alternatives = [(verdict, math.log(0.9)), (other, math.log(0.1))]

    def token(text: str, lp: float, top: list[tuple[str, float]]) -> dict[str, Any]:
        return {
            "token": text,
            "logprob": lp,
            "bytes": list(text.encode()),
            "top_logprobs": [{"token": t, "logprob": p, "bytes": list(t.encode())} for t, p in top],
        }

    head, tail = content[:at], content[at + len(verdict) :]
    return {
        "content": [
            token(head, 0.0, [(head, 0.0)]),
            token(verdict, math.log(0.9), alternatives),
            token(tail, 0.0, [(tail, 0.0)]),
        ],
        "refusal": None,
    }


def _judge_reply(body: dict[str, Any], last_user: str) -> tuple[dict[str, Any], str, Any]:
    """A ``judge-*`` model's OpenAI answer: (message, finish reason, logprobs)."""
    verdict = judge_verdict(_unslowed(body["model"]), last_user)
    if verdict is None:
        return {"role": "assistant", "content": "I cannot decide."}, "stop", None
    tools = body.get("tools") or []
    if tools and body.get("tool_choice") not in (None, "none", "auto"):
        call = {
            "id": "call_judge",
            "type": "function",
            "function": {"name": tools[0]["function"]["name"], "arguments": orjson.dumps(verdict).decode()},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", None
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        content = orjson.dumps(verdict).decode()
        logprobs = (
            _logprobs(content, verdict["judgement"])
            if body.get("logprobs") and verdict["judgement"] in ("PASS", "FAIL")
            else None
        )
        return {"role": "assistant", "content": content}, "stop", logprobs
    return (
        {"role": "assistant", "content": f"{verdict['explanation']} Verdict: {verdict['judgement']}"},
        "stop",
        None,
    )


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


def _instance(schema: Any, text: str) -> Any:
    """A value valid against a simple JSON schema: strings are ``text`` (or "echo"). Any other
    JSON is taken as a schema too (as OpenAI takes it), and answered with a string."""
    if not isinstance(schema, dict):
        return text or "echo"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        props = properties if isinstance(properties, dict) else {}
        return {name: _instance(sub, text) for name, sub in props.items()}
    if kind == "array":
        return []
    return {"integer": 0, "number": 0, "boolean": False, "null": None}.get(str(kind), text or "echo")


def _openai_reply(body: dict[str, Any], index: int) -> tuple[dict[str, Any], str]:
    messages = body.get("messages") or []
    last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    model = _unslowed(body.get("model") or "")
    if model == "teacher-extract":
        return {"role": "assistant", "content": extract_person(last_user)}, "stop"
    if model == "tool-then-answer":
        return _tool_then_answer(body, messages, last_user)
    if model.startswith("judge-"):
        message, reason, _ = _judge_reply(body, last_user)
        return message, reason
    functions = body.get("functions") or []
    forced = body.get("function_call")
    if functions and forced != "none":  # legacy function calling
        name = forced["name"] if isinstance(forced, dict) else functions[0]["name"]
        call = {"name": name, "arguments": orjson.dumps({"echo": last_user}).decode()}
        return {"role": "assistant", "content": None, "function_call": call}, "function_call"
    # Custom (free-form) tools are accepted and never called.
    tools = [t for t in body.get("tools") or [] if t.get("type", "function") == "function"]
    choice = body.get("tool_choice")
    if tools and choice != "none":
        named = isinstance(choice, dict) and "function" in choice
        name = choice["function"]["name"] if named else tools[0]["function"]["name"]
        call = {
            "id": f"call_{index}",
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps({"echo": last_user}).decode()},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    prefix = f"[{index}] " if (body.get("n") or 1) > 1 else ""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":  # structured output: an instance of the schema
        # Spaced as json.dumps writes it, so that a token limit can cut it short.
        content = json.dumps(_instance((fmt.get("json_schema") or {}).get("schema") or {}, last_user))
    else:
        content = f"{prefix}echo: {last_user}"
    stop = body.get("stop")
    for s in [stop] if isinstance(stop, str) else stop or []:
        if s in content:
            return {"role": "assistant", "content": content[: content.index(s)]}, "stop"
    max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)  # 5.0 is 5 in JSON
    if max_tokens and _words(content) > max_tokens:
        return {"role": "assistant", "content": " ".join(content.split()[:max_tokens])}, "length"
    return {"role": "assistant", "content": content}, "stop"


def _tool_then_answer(
    body: dict[str, Any], messages: list[dict[str, Any]], last_user: str
) -> tuple[dict[str, Any], str]:
    """``tool-then-answer``: call the first tool until one has answered, then answer with it."""
    tools = body.get("tools") or []
    if messages and messages[-1].get("role") == "tool":
        return {"role": "assistant", "content": f"tool said: {_text(messages[-1].get('content'))}"}, "stop"
    if not tools:
        return {"role": "assistant", "content": f"echo: {last_user}"}, "stop"
    fn = tools[0]["function"]
    props = (fn.get("parameters") or {}).get("properties") or {}
    args = {name: last_user for name, schema in props.items() if schema.get("type") == "string"}
    call = {
        "id": f"call_{time.time_ns()}",
        "type": "function",
        "function": {"name": fn["name"], "arguments": orjson.dumps(args).decode()},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"


def _reply_logprobs(body: dict[str, Any]) -> Any:
    if not _unslowed(body.get("model") or "").startswith("judge-") or not body.get("logprobs"):
        return None
    messages = body.get("messages") or []
    last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    return _judge_reply(body, last_user)[2]


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(_words(_text(m.get("content"))) for m in body.get("messages") or []) or 1


def _completion_tokens(message: dict[str, Any]) -> int:
    if message.get("tool_calls"):
        return sum(_words(c["function"]["arguments"]) for c in message["tool_calls"])
    if message.get("function_call"):
        return _words(message["function_call"]["arguments"])
    return _words(message.get("content") or "")


def _error(status: int, message: str) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": "model", "code": "fake_error"}
    }
    return web.json_response(body, status=status)


def _flaky(app: web.Application, body: dict[str, Any]) -> web.Response | None:
    """The failure a ``flaky-<k>-<status>`` model owes this call, if it still owes one."""
    parts = str(body.get("model") or "").split("-")
    if len(parts) != 3 or parts[0] != "flaky" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    messages = body.get("messages") or []
    last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    key = (body["model"], last_user)
    seen = app[FLAKY][key] = app[FLAKY].get(key, 0) + 1
    if seen > int(parts[1]):
        return None
    status = int(parts[2])
    response = _error(status, f"flaky failure {seen} of {parts[1]}")
    if status == 429:
        response.headers["retry-after-ms"] = "100"
        response.headers["Retry-After"] = "1"
    return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request[ENTRY] = {"path": request.path, "headers": dict(request.headers), "body": body}
    request.app[REQUESTS].append(request[ENTRY])
    keys = request.app[KEYS]
    auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if auth == "reject-me" or (keys and auth not in keys):
        return _error(401, "Incorrect API key provided")
    if request.app[LATENCY_MS]:
        await asyncio.sleep(request.app[LATENCY_MS] / 1000)
    flaky = _flaky(request.app, body)
    if flaky is not None:
        return flaky
    status = await _behaviour(body["model"], request)
    if status is not None:
        return _error(status, f"fake failure {status}")
    if str(body["model"]).endswith("-error"):
        return _error(404, f"The model `{body['model']}` does not exist or you do not have access to it.")
    n = int(body.get("n") or 1)
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
                    {
                        "index": i,
                        "message": {**m, "refusal": None},
                        "finish_reason": r,
                        "logprobs": _reply_logprobs(body),
                    }
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
        if not message.get("function_call"):
            await send([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if message.get("function_call"):
            # As OpenAI streams it: the name comes with the role, then the arguments.
            name, args = message["function_call"]["name"], message["function_call"]["arguments"]
            head = {"role": "assistant", "content": None, "function_call": {"name": name, "arguments": ""}}
            await send([{"index": i, "delta": head, "finish_reason": None}])
            await send([{"index": i, "delta": {"function_call": {"arguments": args}}, "finish_reason": None}])
        elif message.get("tool_calls"):
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
                if body["model"] == "stall-midstream" and k == 1:
                    # Sends nothing more, until the gateway (its read timeout) gives up on it.
                    while request.transport is not None and not request.transport.is_closing():
                        await asyncio.sleep(0.05)
                    return resp
                if body["model"] == "cut-midstream" and k == 1:
                    assert request.transport is not None
                    request.transport.abort()  # the connection dies: no error event, no [DONE]
                    return resp
        await send([{"index": i, "delta": {}, "finish_reason": reason}])
    if include_usage:
        await send([], usage=usage)
    await resp.write(b"data: [DONE]\n\n")
    return resp


# ---------------------------------------------------------------- Anthropic


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request[ENTRY] = {"path": request.path, "headers": dict(request.headers), "body": body}
    request.app[REQUESTS].append(request[ENTRY])
    if request.headers.get("x-api-key") == "reject-me":
        return web.json_response(
            {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
            status=401,
        )
    status = await _behaviour(body["model"], request)
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
    judge = _unslowed(body["model"])
    verdict = judge_verdict(judge, text) if judge.startswith("judge-") else None
    if verdict is not None and tools:
        name = choice.get("name") or tools[0]["name"]
        blocks = [{"type": "tool_use", "id": "toolu_judge", "name": name, "input": verdict}]
        stop_reason = "tool_use"
    elif tools and choice.get("type") != "none":
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


# ---------------------------------------------------------------- embeddings and legacy completions


def fake_vector(text: str, dimensions: int) -> list[float]:
    """The fake's embedding of ``text``: deterministic, in [-1, 1), as float32 values."""
    import hashlib
    import struct

    digest = b""
    counter = 0
    while len(digest) < 4 * dimensions:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    ints = struct.unpack(f"<{dimensions}I", digest[: 4 * dimensions])
    return [struct.unpack("<f", struct.pack("<f", i / 2**31 - 1.0))[0] for i in ints]


def _as_texts(value: Any) -> list[str]:
    """A ``prompt`` or ``input`` as a list of texts (token arrays become their ids, spaced)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and isinstance(value[0], int):
        return [" ".join(map(str, value))]
    if isinstance(value, list):
        return [v if isinstance(v, str) else " ".join(map(str, v)) for v in value]
    return [""]


async def embeddings(request: web.Request) -> web.Response:
    """Vectors from :func:`fake_vector` (8 dimensions unless ``dimensions`` says otherwise);
    usage counts words. ``fail-<status>`` and ``slow-<ms>`` models behave as for chat."""
    import base64
    import struct

    body = await request.json()
    request[ENTRY] = {"path": request.path, "headers": dict(request.headers), "body": body}
    request.app[REQUESTS].append(request[ENTRY])
    status = await _behaviour(body["model"], request)
    if status is not None:
        return _error(status, f"fake failure {status}")
    dimensions = int(body.get("dimensions") or 8)
    texts = _as_texts(body.get("input"))
    data = []
    for i, text in enumerate(texts):
        vector = fake_vector(text, dimensions)
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    tokens = sum(_words(t) for t in texts)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


async def completions(request: web.Request) -> web.StreamResponse:
    """Legacy completions: the text echoes the prompt (``" echo: <prompt>"``; choice ``i`` of
    ``n`` per prompt gets ``[i]``); usage counts words; streams send a word per chunk.
    ``fail-<status>``, ``slow-<ms>`` and ``fail-midstream`` behave as for chat."""
    body = await request.json()
    request[ENTRY] = {"path": request.path, "headers": dict(request.headers), "body": body}
    request.app[REQUESTS].append(request[ENTRY])
    status = await _behaviour(body["model"], request)
    if status is not None:
        return _error(status, f"fake failure {status}")
    n = int(body.get("n") or 1)
    prompts = _as_texts(body.get("prompt"))
    texts = []
    for prompt in prompts:
        for i in range(n):
            texts.append((f" [{i}]" if n > 1 else "") + f" echo: {prompt}")
    prompt_tokens = sum(_words(p) for p in prompts)
    completion_tokens = sum(_words(t) for t in texts)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    cid = f"cmpl-fake{time.time_ns()}"
    head = {"id": cid, "object": "text_completion", "created": int(time.time()), "model": body["model"]}
    if not body.get("stream"):
        choices = [
            {"index": i, "text": t, "finish_reason": "stop", "logprobs": None} for i, t in enumerate(texts)
        ]
        return web.json_response({**head, "choices": choices, "usage": usage})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i, text in enumerate(texts):
        words = text.split(" ")
        for k, word in enumerate(words):
            piece = word if k == 0 else " " + word
            choice = {"index": i, "text": piece, "finish_reason": None, "logprobs": None}
            await resp.write(b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n")
            if body["model"] == "fail-midstream" and k == 1:
                await resp.write(
                    b'data: {"error": {"message": "upstream exploded", "type": "server_error"}}\n\n'
                )
                return resp
        done = {"index": i, "text": "", "finish_reason": "stop", "logprobs": None}
        await resp.write(b"data: " + orjson.dumps({**head, "choices": [done]}) + b"\n\n")
    if (body.get("stream_options") or {}).get("include_usage"):
        await resp.write(b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def anthropic_count_tokens(request: web.Request) -> web.Response:
    """Anthropic's token count, by the same rule as a message's ``input_tokens``."""
    body = await request.json()
    request[ENTRY] = {"path": request.path, "headers": dict(request.headers), "body": body}
    request.app[REQUESTS].append(request[ENTRY])
    return web.json_response({"input_tokens": _words(orjson.dumps(body["messages"]).decode()) // 4 + 1})


# ---------------------------------------------------------------- OpenAI Responses


def _responses_input_text(body: dict[str, Any]) -> str:
    items = body.get("input")
    if isinstance(items, str):
        return items
    for item in reversed(items or []):
        if item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if p.get("type") == "input_text")
    return ""


# Responses the fake "stores", by id: (response, input).
_STORED_RESPONSES: dict[str, tuple[dict[str, Any], Any]] = {}


def _stored_response(request: web.Request) -> tuple[dict[str, Any], Any] | None:
    request.app[REQUESTS].append({"path": request.path, "headers": dict(request.headers), "body": None})
    return _STORED_RESPONSES.get(request.match_info["response_id"])


async def get_response(request: web.Request) -> web.Response:
    found = _stored_response(request)
    if found is None:
        return _error(404, "No response found")
    return web.json_response(found[0])


async def delete_response(request: web.Request) -> web.Response:
    found = _stored_response(request)
    if found is None:
        return _error(404, "No response found")
    del _STORED_RESPONSES[found[0]["id"]]
    return web.json_response({"id": found[0]["id"], "object": "response.deleted", "deleted": True})


async def response_input_items(request: web.Request) -> web.Response:
    found = _stored_response(request)
    if found is None:
        return _error(404, "No response found")
    items = found[1] if isinstance(found[1], list) else [{"role": "user", "content": found[1]}]
    data = [
        {"id": f"msg_in{i}", "type": "message", "status": "completed", **item}
        | {"content": [{"type": "input_text", "text": _text_of_item(item)}]}
        for i, item in enumerate(items)
    ]
    if request.query.get("order", "desc") == "desc":
        data.reverse()
    return web.json_response(
        {"object": "list", "data": data, "first_id": None, "last_id": None, "has_more": False}
    )


def _text_of_item(item: dict[str, Any]) -> str:
    content = item.get("content")
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content or [])


async def responses(request: web.Request) -> web.StreamResponse:
    """OpenAI's ``POST /v1/responses``: an echo of the last user text."""
    body = await request.json()
    request[ENTRY] = {"path": request.path, "headers": dict(request.headers), "body": body}
    request.app[REQUESTS].append(request[ENTRY])
    status = await _behaviour(body["model"], request)
    if status is not None:
        return _error(status, f"fake failure {status}")
    text = f"echo: {_responses_input_text(body)}"
    words = _words(text)
    message = {
        "id": f"msg_fake{time.time_ns()}",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    usage = {
        "input_tokens": _words(_responses_input_text(body)) or 1,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": words,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": (_words(_responses_input_text(body)) or 1) + words,
    }
    response = {
        "id": f"resp_fake{time.time_ns()}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "model": body["model"],
        "output": [message],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
        "metadata": {},
        "fake_extra": "kept",
    }
    if body.get("store") is not False:
        _STORED_RESPONSES[response["id"]] = (response, body.get("input"))
    if not body.get("stream"):
        return web.json_response(response)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    seq = 0

    async def event(kind: str, **data: Any) -> None:
        nonlocal seq
        payload = {"type": kind, "sequence_number": seq, **data}
        seq += 1
        await resp.write(f"event: {kind}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n")

    start = {**response, "status": "in_progress", "output": [], "usage": None}
    await event("response.created", response=start)
    await event("response.in_progress", response=start)
    item = {**message, "status": "in_progress", "content": []}
    await event("response.output_item.added", output_index=0, item=item)
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": message["id"], "output_index": 0, "content_index": 0}
    await event("response.content_part.added", **where, part=part)
    for k, word in enumerate(text.split(" ")):
        await event("response.output_text.delta", **where, delta=word if k == 0 else " " + word, logprobs=[])
    await event("response.output_text.done", **where, text=text, logprobs=[])
    await event("response.content_part.done", **where, part=message["content"][0])
    await event("response.output_item.done", output_index=0, item=message)
    await event("response.completed", response=response)
    return resp


# ---------------------------------------------------------------- plumbing


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[REQUESTS])


async def clear_requests(request: web.Request) -> web.Response:
    request.app[REQUESTS].clear()
    return web.json_response({"cleared": True})


def make_app(latency_ms: int = 0, keys: frozenset[str] = frozenset()) -> web.Application:
    app = web.Application()
    app[REQUESTS] = []
    app[FLAKY] = {}
    app[LATENCY_MS] = latency_ms
    app[KEYS] = keys
    for prefix in ("/v1", "/openai/v1"):
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_post("/v1/responses", responses)
    app.router.add_get("/v1/responses/{response_id}", get_response)
    app.router.add_delete("/v1/responses/{response_id}", delete_response)
    app.router.add_get("/v1/responses/{response_id}/input_items", response_input_items)
    app.router.add_post("/v1/messages/count_tokens", anthropic_count_tokens)
    for prefix in ("/v1", "/openai/v1"):
        app.router.add_post(f"{prefix}/embeddings", embeddings)
        app.router.add_post(f"{prefix}/completions", completions)
    app.router.add_post("/openai/deployments/{deployment}/embeddings", embeddings)
    app.router.add_get("/_requests", list_requests)
    app.router.add_delete("/_requests", clear_requests)
    return app


@contextmanager
def running_fake_provider(
    port: int = 0, *, latency_ms: int = 0, keys: frozenset[str] = frozenset()
) -> Iterator[str]:
    """Serve the fake on a loopback port in a background thread; yield its base URL.

    ``latency_ms``: every OpenAI-format answer waits that long first (a real provider's
    latency); ``keys``: when given, any other API key gets a 401."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(make_app(latency_ms, keys), access_log=None)
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
