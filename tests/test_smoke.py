from conftest import Gateway


def test_chat_completion_basic(gateway: Gateway) -> None:
    r = gateway.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "echo: hi"


def test_cli_version_prints_the_version() -> None:
    import subprocess
    import sys

    from tunepipe import __version__

    done = subprocess.run(
        [sys.executable, "-m", "tunepipe", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, __version__)


def test_serve_prints_only_a_prefix_of_the_configured_key(gateway: Gateway) -> None:
    from conftest import server_log

    port = int(gateway.root.rsplit(":", 1)[1])
    text = server_log(gateway.env, port).read_text()
    assert gateway.key not in text and gateway.key[:8] in text
