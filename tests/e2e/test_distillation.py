"""OpenPipe's core loop end to end, on the real default model: a teacher model answers a
structured task through the gateway, the logged calls become a dataset, ``POST /models``
fine-tunes SmolLM2-135M-Instruct with LoRA on it, and the deployed ``openpipe:<slug>`` then
answers prompts it never saw like the teacher does.

The teacher is the fake provider's ``teacher-extract`` model (name, age and city of a person as
compact JSON). Held-out prompts are sentences no training call contained; a second held-out set
uses names and cities that appear in no training sentence at all, so the student must have
learned the task, not the answers.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from openpipe.client import OpenPipe

from conftest import FakeProvider, _start, base_env, free_port
from default_model import DEFAULT, converted_cache, install_default
from e2e.scenario import SYSTEM, TRAIN_CALLS, split_sentences
from fakes.provider import extract_person


def ask(client: openai.OpenAI, model: str, sentence: str, **extra: Any) -> str:
    answer = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": sentence}],
        max_tokens=40,
        **extra,
    )
    return (answer.choices[0].message.content or "").strip()


def exact_match(client: openai.OpenAI, model: str, prompts: list[str], **extra: Any) -> float:
    misses = [(p, got) for p in prompts if (got := ask(client, model, p, **extra)) != extract_person(p)]
    for prompt, got in misses[:10]:
        print(f"miss: {prompt!r} -> {got!r}")
    return 1 - len(misses) / len(prompts)


def wait_job(http: httpx.Client, dataset_id: str, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/datasets/{dataset_id}/jobs/{job_id}").json()
        if job["status"] in ("DONE", "ERROR"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_distillation_from_logs_reaches_teacher_on_held_out_prompts(
    request: pytest.FixtureRequest, fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("distill-home")
    env = base_env(home, fake_provider, None)
    key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env["TUNEPIPE_API_KEY"] = key
    install_default(env, home, converted_cache(request, tmp_path_factory))
    # Held out: sentences no training call contained (new combinations of name, age, city and
    # template), and, harder, sentences about names and cities that never appear in training.
    train, held_out, unseen = split_sentences()

    port = free_port()
    proc = _start(env, port)
    base_url = f"http://127.0.0.1:{port}/api/v1"
    try:
        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)
        before = exact_match(client, f"local:{DEFAULT}", held_out[:10] + unseen[:5], temperature=0)

        tag = f"extract-{uuid.uuid4().hex[:8]}"
        for sentence in train:  # the teacher's calls, logged by the gateway
            ask(client, "teacher-extract", sentence, metadata={"task": tag})

        http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        dataset = http.post("/datasets", json={"name": "extract"}).json()
        job = http.post(
            f"/datasets/{dataset['id']}/import-logs", json={"filters": {"metadata": {"task": tag}}}
        ).json()
        job = wait_job(http, dataset["id"], job["id"])
        assert job["status"] == "DONE" and job["created"] == TRAIN_CALLS, job

        op = OpenPipe(api_key=key, base_url=base_url)
        slug = f"extract-{uuid.uuid4().hex[:6]}"
        op.create_model(
            dataset_id=dataset["id"],
            slug=slug,
            default_temperature=0,
            training_config={  # type: ignore[arg-type]
                "provider": "openpipe",
                "baseModel": DEFAULT,
                "sft_hyperparameters": {"num_epochs": 2, "learning_rate_multiplier": 5},
            },
        )
        started = time.monotonic()
        while (model := op.get_model(model_slug=slug)).openpipe.status not in ("DEPLOYED", "ERROR"):
            assert time.monotonic() - started < 1200, model
            time.sleep(2)
        assert model.openpipe.status == "DEPLOYED", model.openpipe.error_message
        details = http.get(f"/models/{slug}").json()["tunepipe"]
        metrics = details["metrics"]
        print(f"\ntraining: {time.monotonic() - started:.0f} s, metrics {metrics}")
        assert metrics["sft_final_loss"] < metrics["sft_first_loss"]
        assert metrics["test_exact_match"] is not None and metrics["test_exact_match"] >= 0.9, metrics

        # No temperature in the request: the model's defaultTemperature (0) applies.
        after = exact_match(client, f"openpipe:{slug}", held_out)
        unseen_after = exact_match(client, f"openpipe:{slug}", unseen)
        print(
            f"held-out exact match: before {before:.2f}, after {after:.2f}; unseen names {unseen_after:.2f}"
        )
        assert before <= 0.5
        assert after >= 0.9
        # A 135M model copies names it never saw less reliably (measured 0.7-0.9: rare names split
        # into tokens differently inside JSON); it must still clearly have learned the task.
        assert unseen_after >= 0.5
        logged = http.get("/logs", params={"model": f"openpipe:{slug}", "limit": 100}).json()
        assert len(logged["data"]) >= 1

        # Head-to-head against its teacher on the TEST split: the student's test-set answers
        # are reused (only the teacher answers anew), and it is as good as the teacher.
        test_rows = details["testRows"]
        ev = http.post(
            "/evals",
            json={
                "name": "student vs teacher",
                "dataset_id": dataset["id"],
                "type": "head_to_head",
                "models": [f"openpipe:{slug}", "teacher-extract"],
                "judge_model": "anthropic:judge-json",
            },
        ).json()
        deadline = time.monotonic() + 300
        while (result := http.get(f"/evals/{ev['id']}").json())["status"] not in ("COMPLETE", "ERROR"):
            assert time.monotonic() < deadline, result
            time.sleep(0.5)
        print(f"head-to-head: {result['results']['models']}, progress {result['progress']}")
        assert result["status"] == "COMPLETE" and result["num_entries"] == test_rows
        assert (result["progress"]["reused"], result["progress"]["generated"]) == (test_rows, test_rows)
        student = next(m for m in result["results"]["models"] if m["model"] == f"openpipe:{slug}")
        assert student["errors"] == 0 and student["score"] >= 0.45 and student["ties"] >= 0.8 * test_rows
    finally:
        proc.terminate()
        proc.wait(30)
