"""Install as a newcomer does: a fresh virtualenv with the runtime dependencies only (torch first,
then ``pip install .`` with the pinned versions of ``constraints.txt``, as ``make serve`` does),
then ``tunepipe serve`` on an empty ``TUNEPIPE_HOME``: the offline default model answers, a
proxied call reaches the fake provider, and SIGTERM shuts the server down cleanly.

The dev extras (pytest, the SDKs, …) are never installed in that virtualenv, so a runtime import
that only a dev tool happened to bring along fails here, not on a user's machine.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from conftest import KEY_RE, FakeProvider, _start, base_env, free_port, server_log

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _pip(venv: Path, *args: str) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "-c", str(ROOT / "constraints.txt"), *args],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _torch_requirement() -> str:
    makefile = (ROOT / "Makefile").read_text()
    line = next(line for line in makefile.splitlines() if line.startswith("TORCH ?="))
    return line.split("=", 1)[1].strip().lstrip("=").strip()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_install_runtime_dependencies_alone_serve_local_and_proxied_calls(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    # The package from a copy of the sources, so the build never touches the working tree.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    _pip(venv, "--upgrade", "pip")
    _pip(venv, _torch_requirement())
    _pip(venv, str(source))
    frozen = subprocess.run(
        [str(venv / "bin" / "pip"), "freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    for dev_only in ("pytest", "openai", "openpipe", "mypy", "ruff"):
        assert f"\n{dev_only}==" not in f"\n{frozen}", f"{dev_only} is installed: the check proves nothing"

    home = tmp_path / "home"
    env = base_env(home, fake_provider, None)
    env["TUNEPIPE_DEFAULT_MODEL"] = "true"  # what `make serve` does: fetch and convert it on first start
    home.mkdir()
    port = free_port()
    proc = _start(env, port, python=str(venv / "bin" / "python"), startup_s=900)
    try:
        output = server_log(env, port).read_text()
        match = KEY_RE.search(output)
        assert match, output
        assert f"local:{DEFAULT}" in output, output
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/api/v1", api_key=match.group(0), max_retries=0, timeout=300
        )
        local = client.chat.completions.create(
            model=f"local:{DEFAULT}",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            temperature=0,
        )
        assert local.choices[0].message.content, local
        assert local.usage is not None and local.usage.completion_tokens > 0
        proxied = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "through the gateway"}]
        )
        assert proxied.choices[0].message.content == "echo: through the gateway"
        assert fake_provider.last()["body"]["messages"][-1]["content"] == "through the gateway"
        # The web UI's templates and vendored assets ship in the package.
        sign_in = httpx.get(f"http://127.0.0.1:{port}/sign-in", timeout=30)
        assert sign_in.status_code == 200 and "API key" in sign_in.text, sign_in.text[:500]
        assert httpx.get(f"http://127.0.0.1:{port}/static/htmx.min.js", timeout=30).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(60)
    output = server_log(env, port).read_text()
    # uvicorn re-raises the SIGTERM it handled once it has shut down, so the status says SIGTERM.
    assert returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete." in output, output
    assert "Traceback" not in output and "ERROR" not in output, output
