"""What the request-log spool costs a call: CPU of ``LogWriter.submit`` with and without it.

``bench/gateway.py`` measures the whole proxied path with the spool on and off side by side,
but on a shared machine its timings move by more than the spool costs. This measures only the
part that changes, in process: submitting the records of a typical proxied call (the bench's
request and response bodies) to a writer whose batches never start (a long linger), so the
CPU counted (user + system, every thread) is the handler's share alone: encoding the record,
appending it to the spool file, queueing it. Rounds alternate between the two, medians are
printed with their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.log_writer import LogWriter
from tunepipe.db.migrate import upgrade
from tunepipe.db.projects import create_project
from tunepipe.domain.logs import LogRecord

REQUEST = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Say hello to the benchmark."},
        ],
        "temperature": 0.2,
        "metadata": {"prompt_id": "bench"},
    }
)
RESPONSE = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello, benchmark.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 24, "completion_tokens": 4, "total_tokens": 28},
    }
)


def records(n: int, project_id: str) -> list[LogRecord]:
    return [
        LogRecord(
            id=str(uuid.uuid4()),
            project_id=project_id,
            requested_at=1_700_000_000_000,
            received_at=1_700_000_000_250,
            model="gpt-4o-mini",
            status_code=200,
            source="proxy",
            request=REQUEST,
            response=RESPONSE,
            input_tokens=24,
            output_tokens=4,
            cost=4.2e-06,
            finish_reason="stop",
            completion_id="chatcmpl-bench",
            metadata={"prompt_id": "bench"},
            request_id=uuid.uuid4().hex,
        )
        for _ in range(n)
    ]


async def cpu_per_submit_us(n: int, *, spool: bool) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="tunepipe-spool-bench-"))
    engine = make_engine(f"sqlite:///{tmp / 'logs.db'}")
    upgrade(engine)
    writer = LogWriter(engine, queue_size=n + 1, linger_s=3600, spool_dir=tmp / "spool" if spool else None)
    writer.start()
    batch = records(n, Database(engine).run_sync(create_project, "bench").id)
    try:
        start = time.process_time()
        for record in batch:
            await writer.submit(record)
        return (time.process_time() - start) / n * 1e6
    finally:
        await writer.close()  # written to the database (not measured), the spool removed
        engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--records", type=int, default=5_000, help="records submitted per round")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    without, with_spool = [], []
    for _ in range(args.rounds):
        without.append(await cpu_per_submit_us(args.records, spool=False))
        with_spool.append(await cpu_per_submit_us(args.records, spool=True))
    a, b = statistics.median(without), statistics.median(with_spool)
    print(f"CPU per submitted record ({args.rounds} rounds of {args.records:,}, medians)")
    print(f"  without the spool  {a:6.1f} µs")
    print(f"  with the spool     {b:6.1f} µs   (+{b - a:.1f} µs, {b / a:.1f}x)")


if __name__ == "__main__":
    asyncio.run(main())
