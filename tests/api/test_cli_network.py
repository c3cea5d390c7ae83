"""``tunepipe network show|check``: the policy the servers enforce for URLs projects set, as the
environment makes it, and the verdict on a URL without connecting to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TUNEPIPE_")}
    return subprocess.run(
        [sys.executable, "-m", "tunepipe", "network", *args],
        env={**clean, "TUNEPIPE_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_network_show_reads_the_environment(tmp_path: Path) -> None:
    shown = _run(tmp_path, "show", "--json", TUNEPIPE_UPSTREAM_ALLOW="10.1.0.0/16,vllm.internal,127.0.0.1")
    assert shown.returncode == 0, shown.stderr
    policy = json.loads(shown.stdout)
    assert policy["networks"] == ["10.1.0.0/16", "127.0.0.1/32"] and policy["hosts"] == ["vllm.internal"]
    assert policy["private"] is False
    assert json.loads(_run(tmp_path, "show", "--json", TUNEPIPE_UPSTREAM_ALLOW_PRIVATE="true").stdout)[
        "private"
    ]
    table = _run(tmp_path, "show").stdout
    assert "Private addresses" in table and "refused" in table


def test_cli_network_check_gives_the_servers_verdict(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:5432/v1", "http://169.254.169.254/latest", "http://10.0.0.5/v1", "ftp://x"):
        refused = _run(tmp_path, "check", url)
        assert refused.returncode == 1 and "refused" in refused.stdout, (url, refused.stdout)
    assert _run(tmp_path, "check", "http://8.8.8.8/v1").returncode == 0  # public: nothing resolved
    opened = _run(tmp_path, "check", "http://127.0.0.1:8000/v1", TUNEPIPE_UPSTREAM_ALLOW="127.0.0.1")
    assert opened.returncode == 0 and "allowed" in opened.stdout
    private = _run(tmp_path, "check", "http://10.0.0.5/v1", TUNEPIPE_UPSTREAM_ALLOW_PRIVATE="true")
    assert private.returncode == 0
