"""``python -m tunepipe.graders.child CPU_S MEMORY_MB``: the process a code grader runs in.

Owns the process-wide concerns of running untrusted grader source: the limits (RLIMIT_CPU with
a hard limit one second above the soft one, RLIMIT_AS, no core files) are set before the source
is compiled; the real stdin and stdout are kept for the protocol, and file descriptors 0 and 1
(``input()``, ``print()``, libraries) become ``/dev/null`` and stderr, so nothing the grader does
can read a case meant for later or corrupt a reply.

Protocol, one JSON object per line each way: the first request is ``{"source": ...}``, answered
by ``{"ready": true}`` or ``{"error": ...}`` (after which the child exits); each later request
is a case (the fields of ``sandbox.Case``), answered by ``{"score": x}`` or ``{"error": ...}``.
Every reply carries ``cpu``, the CPU seconds this process has used, so the parent can retire a
child before its cumulative budget runs out. Imports stay at stdlib + orjson so a child starts fast.
"""

from __future__ import annotations

import builtins
import numbers
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

import orjson

MESSAGE_LIMIT = 2000


def main(argv: list[str]) -> int:
    requests, replies = _claim_stdio()
    cpu_s, memory_mb = (int(arg) for arg in argv)
    _limit(cpu_s, memory_mb)
    first = orjson.loads(requests.readline() or b"{}")
    grader, error = _load(str(first.get("source", "")))
    if grader is None:
        _reply(replies, {"error": error})
        return 0
    _reply(replies, {"ready": True})
    for line in requests:
        case = orjson.loads(line)
        _reply(replies, _grade(grader, case))
    return 0


def _claim_stdio() -> tuple[IO[bytes], IO[bytes]]:
    """Private streams on the original stdin and stdout; descriptors 0 and 1 stop being the protocol."""
    sys.stdout.flush()
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 -- lives as long as the process
    sys.stdout = sys.stderr
    return requests, replies


def _limit(cpu_s: int, memory_mb: int) -> None:
    def lower(kind: int, soft: int, hard: int) -> None:
        _, current_hard = resource.getrlimit(kind)
        if current_hard != resource.RLIM_INFINITY:  # never ask for more than this process may have
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(kind, (soft, hard))

    # SIGXCPU at the soft limit ends the process; the hard limit (SIGKILL) is for one that ignores it.
    lower(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    lower(resource.RLIMIT_AS, memory_mb << 20, memory_mb << 20)
    lower(resource.RLIMIT_CORE, 0, 0)


def _load(source: str) -> tuple[Callable[..., Any] | None, str]:
    namespace: dict[str, Any] = {"__name__": "__grader__", "__builtins__": builtins}
    try:
        exec(compile(source, "<grader>", "exec", dont_inherit=True), namespace)
    except BaseException as e:  # the process boundary: any failure is the answer
        return None, f"grader failed to load: {_describe(e)}"
    grader = namespace.get("grader")
    if not callable(grader):
        return None, f"grader is {type(grader).__name__}, not a function"
    return grader, ""


def _grade(grader: Callable[..., Any], case: dict[str, Any]) -> dict[str, Any]:
    try:
        value = grader(
            case["messages"],
            case["tools"],
            case["tool_choice"],
            case["generated_output"],
            case["dataset_output"],
        )
        if not isinstance(value, numbers.Real):
            return {"error": f"grader returned {type(value).__name__}, not a number"}
        score = float(value)
    except BaseException as e:  # the grader's own failure (SystemExit included) is this case's error
        return {"error": _describe(e)}
    if not 0.0 <= score <= 1.0:  # also false for NaN
        return {"error": f"grader returned {_short(repr(value))}, outside [0, 1]"}
    return {"score": score}


def _describe(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return "grader ran out of memory"
    message = traceback.format_exception_only(type(e), e)[-1].strip()
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == "<grader>"]
    if frames and not isinstance(e, SyntaxError):
        message += f" (line {frames[-1].lineno})"
    return _short(message)


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _reply(replies: IO[bytes], reply: dict[str, Any]) -> None:
    reply["cpu"] = time.process_time()
    replies.write(orjson.dumps(reply) + b"\n")
    replies.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
