"""Runs a code grader's source out of process, one child at a time, and turns everything that can go
wrong with it into an error for one case.

The source is checked here without being run (``check_source``), then sent once to a child
(``python -m tunepipe.graders.child``, see that module for the wire protocol), followed by the
cases one JSON line each. The child runs in its own session with a CPU-time and an address-space
limit that it sets on itself before it compiles the source; this side holds the wall clock.

Invariants:
- One ``Grade`` per case, in order, whatever the grader does: a timeout, a killed or crashed child
  or a malformed reply costs the current case only; the child is killed (its whole process group)
  and a fresh one grades the rest. A source that fails while loading fails every case, once.
- RLIMIT_CPU counts the child's whole life, so a child is retired before a case when less than
  ``min(timeout_s, cpu_s / 2)`` of its budget is left: a long evaluation is not charged the sum of
  its cases, and the case that hits the limit is the one that spent it.
- No child outlives ``run_grader``, even when it is cancelled.
- The child gets a minimal environment (no credentials of this process), ``PYTHONPATH`` kept.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

STARTUP_ALLOWANCE_S = 10.0  # interpreter start, on top of timeout_s for loading the source
REPLY_LIMIT = 1 << 20  # the longest protocol line accepted from a child
STDERR_TAIL = 8192  # bytes of the child's stderr kept for explaining its death
_ENV_KEPT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "HOME")


class GraderInvalid(ValueError):
    """The grader source cannot be used: it does not compile, or defines no ``grader`` function."""


@dataclass(frozen=True)
class Case:
    """One dataset entry to grade: the input and the two assistant messages to compare."""

    messages: list[dict[str, Any]]
    tools: list[Any] | None
    tool_choice: Any
    generated_output: dict[str, Any] | None
    dataset_output: dict[str, Any] | None


@dataclass(frozen=True)
class Grade:
    """A score in [0, 1], or why there is none."""

    score: float | None
    error: str | None = None


@dataclass(frozen=True)
class Limits:
    """Per-case wall clock; CPU seconds (RLIMIT_CPU) and address space (RLIMIT_AS) per child."""

    timeout_s: float = 5.0
    cpu_s: int = 10
    memory_mb: int = 512


def check_source(source: str) -> None:
    """Check that ``source`` compiles and binds ``grader`` at top level, without running it.

    Raises:
        GraderInvalid: the source does not compile (the message names the line), has no top-level
            ``def grader`` (or assignment or import as ``grader``), or its ``grader`` is async.
    """
    try:
        tree = ast.parse(source, "<grader>")
        compile(tree, "<grader>", "exec", dont_inherit=True)
    except SyntaxError as e:
        raise GraderInvalid(f"grader source does not compile: line {e.lineno}: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # null bytes; absurdly deep nesting
        raise GraderInvalid(f"grader source does not compile: {e}") from None
    last = None
    for node in tree.body:
        if _binds_grader(node):
            last = node
    if last is None:
        raise GraderInvalid("grader source defines no top-level function named `grader`")
    if isinstance(last, ast.AsyncFunctionDef):
        raise GraderInvalid(f"line {last.lineno}: `grader` must be a plain function, not `async def`")


def _binds_grader(node: ast.stmt) -> bool:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return node.name == "grader"
    if isinstance(node, ast.Assign):
        return any(_names_grader(target) for target in node.targets)
    if isinstance(node, ast.AnnAssign):
        return node.value is not None and _names_grader(node.target)
    if isinstance(node, ast.Import | ast.ImportFrom):
        return any((alias.asname or alias.name) == "grader" for alias in node.names)
    return False


def _names_grader(target: ast.expr) -> bool:
    if isinstance(target, ast.Tuple | ast.List):
        return any(_names_grader(t) for t in target.elts)
    return isinstance(target, ast.Name) and target.id == "grader"


async def run_grader(source: str, cases: Sequence[Case], limits: Limits = Limits()) -> list[Grade]:
    """Grade every case with ``source``'s ``grader`` in a sandboxed child process.

    Returns:
        One ``Grade`` per case, in order; a failure of the grader is that case's ``error``.

    Raises:
        GraderInvalid: from ``check_source``, before any process is started.
    """
    check_source(source)
    grades: list[Grade] = []
    child: _Child | None = None
    try:
        while len(grades) < len(cases):
            if child is not None and child.cpu_left(limits) < min(limits.timeout_s, limits.cpu_s / 2):
                await child.kill()
                child = None
            if child is None:
                child = await _Child.start(limits)
                failure = await child.load(source, limits)
                if failure is not None:  # the source itself is broken: no point in another child
                    grades.extend(Grade(None, failure) for _ in range(len(cases) - len(grades)))
                    break
            grade, healthy = await child.grade(cases[len(grades)], limits)
            grades.append(grade)
            if not healthy:
                await child.kill()
                child = None
    finally:
        if child is not None:
            await child.kill()
    return grades


class _Died(Exception):
    """The child stopped answering: EOF, a broken pipe or a malformed reply."""


class _Child:
    """One child process and its two pipes; its stderr is drained into a bounded tail."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.cpu_used = 0.0
        self._stderr = bytearray()
        self._drain = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(cls, limits: Limits) -> _Child:
        env = {key: os.environ[key] for key in _ENV_KEPT if key in os.environ}
        env |= {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tunepipe.graders.child",
            str(limits.cpu_s),
            str(limits.memory_mb),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=env,
            limit=REPLY_LIMIT,
        )
        return cls(proc)

    def cpu_left(self, limits: Limits) -> float:
        return limits.cpu_s - self.cpu_used

    async def load(self, source: str, limits: Limits) -> str | None:
        """Send the source; ``None`` once the child is ready, else why every case fails."""
        timeout = limits.timeout_s + STARTUP_ALLOWANCE_S
        try:
            reply = await asyncio.wait_for(self._exchange(orjson.dumps({"source": source})), timeout)
        except TimeoutError:
            return f"grader timed out after {limits.timeout_s:g} s while loading"
        except _Died:
            return "grader failed to load: " + await self._death()
        if reply.get("ready") is True:
            return None
        return str(reply.get("error") or "grader failed to load")

    async def grade(self, case: Case, limits: Limits) -> tuple[Grade, bool]:
        """The grade for one case, and whether this child can grade the next one."""
        try:
            request = orjson.dumps(asdict(case))
        except orjson.JSONEncodeError as e:
            return Grade(None, f"case is not JSON: {e}"), True
        try:
            reply = await asyncio.wait_for(self._exchange(request), limits.timeout_s)
        except TimeoutError:
            return Grade(None, f"grader timed out after {limits.timeout_s:g} s"), False
        except _Died:
            return Grade(None, await self._death()), False
        return _grade_of(reply)

    async def _exchange(self, request: bytes) -> dict[str, Any]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(request + b"\n")
            await stdin.drain()
            line = await stdout.readline()
        except (BrokenPipeError, ConnectionResetError, ValueError) as e:  # ValueError: line too long
            raise _Died from e
        try:
            reply = orjson.loads(line) if line else None
        except orjson.JSONDecodeError:
            reply = None
        if not isinstance(reply, dict):
            raise _Died
        cpu = reply.get("cpu")
        if isinstance(cpu, int | float):
            self.cpu_used = float(cpu)
        return reply

    async def _death(self) -> str:
        """Why the child stopped answering, from its exit status and the tail of its stderr."""
        try:
            returncode = await asyncio.wait_for(self.proc.wait(), 1.0)
        except TimeoutError:  # alive but not speaking the protocol
            return "grader process sent a malformed reply"
        await asyncio.wait({self._drain}, timeout=1.0)
        tail = self._stderr.decode("utf-8", "replace")
        return _death_message(returncode, tail)

    async def _drain_stderr(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None
        while chunk := await stderr.read(65536):
            self._stderr += chunk
            del self._stderr[:-STDERR_TAIL]

    async def kill(self) -> None:
        """Kill the child's process group and reap it; safe to call more than once."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await self.proc.wait()
        finally:
            await asyncio.wait({self._drain}, timeout=1.0)
            self._drain.cancel()


def _grade_of(reply: dict[str, Any]) -> tuple[Grade, bool]:
    """Trust nothing in a reply: the score is checked again here."""
    error, score = reply.get("error"), reply.get("score")
    if isinstance(error, str):
        return Grade(None, error[:2000]), True
    if isinstance(score, int | float) and not isinstance(score, bool) and 0.0 <= score <= 1.0:
        return Grade(float(score)), True
    return Grade(None, "grader process sent a malformed reply"), False


def _death_message(returncode: int, stderr: str) -> str:
    if returncode == -signal.SIGXCPU:
        return "grader was killed (CPU time limit)"
    if returncode == -signal.SIGKILL:
        return "grader was killed by SIGKILL (CPU time or memory limit)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"grader was killed by signal {-returncode} ({name})"
    if "MemoryError" in stderr:
        return "grader ran out of memory"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    message = f"grader process exited with status {returncode}"
    return f"{message}: {lines[-1][-500:]}" if lines else message
