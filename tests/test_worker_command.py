"""``tunepipe worker`` on another machine: a server that runs no worker of its own
(``TUNEPIPE_WORKER=false``) leaves a model QUEUED; a worker process with its own
``TUNEPIPE_HOME`` and the same database trains it; the server then serves the adapter it never
had on disk, unpacked from the database."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
from openpipe.client import OpenPipe

from conftest import FakeProvider, _start, base_env, free_port
from default_model import cli
from engine.conftest import build_test_model


def rows(n: int, split: str) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"is the red car number {10 + i} on the road"},
                {"role": "assistant", "content": "yes"},
            ],
            "split": split,
        }
        for i in range(n)
    ]


@pytest.mark.slow
def test_worker_command_trains_a_model_the_server_then_serves(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    model_dir = build_test_model(tmp_path / "tiny", seed=3)
    server_home, worker_home = tmp_path / "server", tmp_path / "worker"
    env = base_env(server_home, fake_provider, None)
    key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env.update(TUNEPIPE_API_KEY=key, TUNEPIPE_WORKER="false")
    cli(env, "db", "upgrade")
    cli(env, "base-models", "add", str(model_dir), "--name", "tiny-w")
    port = free_port()
    proc = _start(env, port)
    base_url = f"http://127.0.0.1:{port}/api/v1"
    try:
        op = OpenPipe(api_key=key, base_url=base_url)
        ds = op.create_dataset(name="worker")
        op.create_dataset_entries(dataset_id=ds.id, entries=rows(16, "TRAIN") + rows(2, "TEST"))  # type: ignore[arg-type]
        slug = f"w-{uuid.uuid4().hex[:8]}"
        created = cli(
            env,
            *("models", "create", "--dataset", str(ds.id), "--slug", slug, "--base-model", "tiny-w"),
            *("--epochs", "5", "--lr-multiplier", "50", "--batch-size", "4", "--default-temperature", "0"),
        )
        assert slug in created, created
        time.sleep(3)
        assert op.get_model(model_slug=slug).openpipe.status.value == "QUEUED"  # nobody trains it

        worker_env = {
            **env,
            "TUNEPIPE_HOME": str(worker_home),
            "TUNEPIPE_DATABASE_URL": f"sqlite:///{server_home / 'tunepipe.db'}",
            "TUNEPIPE_WORKER": "true",
        }
        done = subprocess.run(
            [sys.executable, "-m", "tunepipe", "worker", "--once"],
            env=worker_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        model = op.get_model(model_slug=slug)
        assert model.openpipe.status.value == "DEPLOYED", model.openpipe.error_message
        assert "is deployed" in cli(env, "models", "wait", slug)
        assert any((worker_home / "fine_tunes").iterdir())
        assert not (server_home / "fine_tunes").exists()

        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
        answer = client.chat.completions.create(
            model=f"openpipe:{slug}",
            messages=[{"role": "user", "content": "is the red car number 77 on the road"}],
            max_tokens=8,
        )
        assert answer.choices[0].message.content == "yes"
        assert any((server_home / "fine_tunes").glob("*/adapter/adapter_model.safetensors"))
    finally:
        proc.terminate()
        proc.wait(30)
