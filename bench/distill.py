"""Default fine-tuning time and quality: OpenPipe's epoch rule against early stopping, side by side.

The distillation task of ``tests/e2e/test_distillation.py``, through a real ``tunepipe serve``: a
teacher (the fake provider's ``teacher-extract``) answers 240 sentences through the gateway, the
logs are imported into a dataset, and the bundled SmolLM2-135M-Instruct is fine-tuned on it
twice with default hyperparameters, learning rate included:

- **rule**: ``num_epochs`` set to what OpenPipe's rule gives (``clamp(10,000 / rows, 1, 10)``),
  which is what a default fine-tune trained before early stopping (explicit epochs are trained
  in full);
- **early stopping**: no ``num_epochs`` (today's default: the rule is only the upper bound).

For each it prints the steps and epochs trained, the training job's time, and exact match on
the test split, on the end-to-end test's 40 held-out sentences and 20 sentences about unseen
names and cities, and on larger sets of the same two kinds (400 and 200, drawn with another
seed: one prompt of 40 is 2.5 points, too coarse to compare two models by); then the time ratio
and whether the target holds (at most half the time, the same or better held-out exact match).

    .venv/bin/python bench/distill.py [--model-dir DIR] [--only rule|early] [--early-lr X] [--keep]

``--model-dir``: an already converted default model (else ``tunepipe base-models
install-default`` fetches and converts it); ``--keep`` keeps the temporary directory, with the
large sets' misses in ``large-set-misses.txt``. Runs for 30-40 minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import openai  # noqa: E402

from conftest import FakeProvider, _start, base_env, free_port  # noqa: E402
from default_model import DEFAULT, SLOT, cli  # noqa: E402
from e2e.scenario import (  # noqa: E402
    HELD_CITIES,
    HELD_NAMES,
    SYSTEM,
    TRAIN_CITIES,
    TRAIN_NAMES,
    sentences,
    split_sentences,
)
from fakes.provider import extract_person, running_fake_provider  # noqa: E402
from tunepipe.domain.fine_tunes import default_epochs  # noqa: E402


def ask(client: openai.OpenAI, model: str, sentence: str) -> str:
    answer = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": sentence}],
        max_tokens=40,
        temperature=0,
    )
    return (answer.choices[0].message.content or "").strip()


def exact_match(
    client: openai.OpenAI, model: str, prompts: list[str], *, show: bool = True, log: Path | None = None
) -> float:
    """The share of ``prompts`` answered exactly as the teacher would; misses are printed (or
    appended to ``log``)."""
    # Eight at a time: the engine batches concurrent requests (greedy, so the answers are the same).
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p: ask(client, model, p), prompts))
    misses = [(p, got) for p, got in zip(prompts, answers, strict=True) if got != extract_person(p)]
    for prompt, got in misses if show else []:
        print(f"  {model} missed {prompt!r}: {got!r}", flush=True)
    if log is not None:
        with log.open("a") as f:
            f.writelines(f"{model} missed {prompt!r}: {got!r}\n" for prompt, got in misses)
    return 1 - len(misses) / len(prompts)


def large_sets(train: list[str]) -> tuple[list[str], list[str]]:
    rng = random.Random(11)
    held = [s for s in sentences(rng, TRAIN_NAMES, TRAIN_CITIES, 800) if s not in set(train)][:400]
    return held, sentences(rng, HELD_NAMES, HELD_CITIES, 200)


def wait(http: httpx.Client, path: str, done: set[str], key: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        item: dict[str, Any] = http.get(path).json()
        status = item[key] if key in item else item["openpipe"]["status"]
        if status in done:
            return item
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} still {status} after {timeout_s:.0f} s")
        time.sleep(2)


def train(http: httpx.Client, dataset_id: str, sft: dict[str, Any]) -> tuple[str, dict[str, Any], float]:
    """Create a model, wait for it; its slug, metrics and training job's seconds."""
    slug = f"bench-{uuid.uuid4().hex[:6]}"
    config = {"provider": "openpipe", "baseModel": DEFAULT, "sft_hyperparameters": sft}
    r = http.post(
        "/models",
        json={"datasetId": dataset_id, "slug": slug, "defaultTemperature": 0, "trainingConfig": config},
    )
    r.raise_for_status()
    model = wait(http, f"/models/{slug}", {"DEPLOYED", "ERROR"}, "status", 3600)
    if model["openpipe"]["status"] != "DEPLOYED":
        raise SystemExit(f"{slug} failed: {model['openpipe']['errorMessage']}")
    metrics = model["tunepipe"]["metrics"]
    return slug, metrics, float(metrics.get("runtime_s") or 0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, help="a converted SmolLM2-135M-Instruct directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--only", choices=("rule", "early"), help="train one of the two (no ratio: for trying settings)"
    )
    parser.add_argument("--early-lr", type=float, help="learning-rate multiplier of the early-stopping run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tunepipe-distill-"))
    home = work / "home"
    home.mkdir()
    train_sentences, held_out, unseen = split_sentences()
    big_held, big_unseen = large_sets(train_sentences)
    with running_fake_provider() as fake_url:
        env = base_env(home, FakeProvider(fake_url), None)
        env["TUNEPIPE_API_KEY"] = key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
        if args.model_dir:
            (home / "models").mkdir()
            (home / "models" / SLOT).symlink_to(args.model_dir.resolve(), target_is_directory=True)
        cli(env, "db", "upgrade")
        cli(env, "base-models", "install-default", timeout=900)
        port = free_port()
        proc = _start(env, port)
        base_url = f"http://127.0.0.1:{port}/api/v1"
        try:
            client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)
            http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            tag = uuid.uuid4().hex[:8]
            for sentence in train_sentences:
                ask_teacher = client.chat.completions.create(
                    model="teacher-extract",
                    messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": sentence}],
                    metadata={"task": tag},
                )
                assert ask_teacher.choices[0].message.content
            dataset = http.post("/datasets", json={"name": "distill"}).json()
            job = http.post(
                f"/datasets/{dataset['id']}/import-logs", json={"filters": {"metadata": {"task": tag}}}
            )
            wait(http, f"/jobs/{job.json()['id']}", {"DONE", "ERROR"}, "status", 600)
            train_rows = sum(
                1
                for e in http.get(f"/datasets/{dataset['id']}/entries", params={"limit": 500}).json()["data"]
                if e["split"] == "TRAIN"
            )
            early = {"learning_rate_multiplier": args.early_lr} if args.early_lr else {}
            runs = [("rule", {"num_epochs": default_epochs(train_rows)}), ("early stopping", early)]
            if args.only:
                runs = [runs[0] if args.only == "rule" else runs[1]]
            results = []
            for name, sft in runs:
                started = time.monotonic()
                slug, metrics, runtime = train(http, dataset["id"], sft)
                wall = time.monotonic() - started
                held = exact_match(client, f"openpipe:{slug}", held_out)
                new = exact_match(client, f"openpipe:{slug}", unseen)
                log = work / "large-set-misses.txt" if args.keep else None
                large = (
                    exact_match(client, f"openpipe:{slug}", big_held, show=False, log=log),
                    exact_match(client, f"openpipe:{slug}", big_unseen, show=False, log=log),
                )
                results.append((name, metrics, runtime, wall, held, new, large))
                print(f"{name}: done in {wall:.0f} s", flush=True)
        finally:
            proc.terminate()
            proc.wait(60)
    print(f"\n{train_rows} TRAIN rows; rule: {default_epochs(train_rows):g} epochs\n")
    header = ("run", "steps", "epochs", "train s", "job s", "test", "held 40", "unseen 20", "held 400")
    print("  ".join(f"{h:>10}" for h in (*header, "unseen 200")))
    for name, m, runtime, wall, held, new, (big_h, big_u) in results:
        epochs = m.get("sft_epochs_trained") or m["hyperparameters"]["sft"]["num_epochs"]
        row = (
            name,
            m["sft_steps"],
            f"{epochs:g}",
            f"{runtime:.0f}",
            f"{wall:.0f}",
            f"{m.get('test_exact_match') or 0:.2f}",
            f"{held:.2f}",
            f"{new:.2f}",
            f"{big_h:.3f}",
            f"{big_u:.3f}",
        )
        print("  ".join(f"{str(c):>10}" for c in row))
    if len(results) == 2:
        (_, _, rule_s, _, rule_held, _, rule_big), (_, _, early_s, _, early_held, _, early_big) = results
        ratio = early_s / rule_s
        print(f"\ntraining time, early stopping / rule: {ratio:.2f}x (target <= 0.50)")
        print(f"held-out exact match (40): {early_held:.2f} against {rule_held:.2f} (target: >=)")
        print(f"held-out exact match (400): {early_big[0]:.3f} against {rule_big[0]:.3f}")
        met = ratio <= 0.5 and early_held >= rule_held
        print("target met" if met else "target NOT met")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
