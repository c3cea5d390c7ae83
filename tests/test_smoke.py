from conftest import Gateway


def test_chat_completion_basic(gateway: Gateway) -> None:
    r = gateway.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "echo: hi"
