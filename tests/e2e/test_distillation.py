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

import random
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from openpipe.client import OpenPipe

from conftest import FakeProvider, _start, base_env, free_port
from default_model import DEFAULT, converted_cache, install_default
from fakes.provider import extract_person

SYSTEM = "Extract the person's name, age and city from the user's sentence. Answer with compact JSON only."
TEMPLATES = [
    "{name} is {age} years old and lives in {city}.",
    "Meet {name}, a {age}-year-old from {city}.",
    "In {city}, {name} just turned {age}.",
    "{name} ({age}) moved to {city} last year.",
    "Our new colleague {name} is {age} and comes from {city}.",
    "Please welcome {name}, who is {age} and works in {city}.",
]
# Many names and cities, each seen a few times: the student has to learn to copy them, not to
# pick from a short list it memorised.
TRAIN_NAMES = [
    "Alice",
    "Bob",
    "Carol",
    "David",
    "Emma",
    "Frank",
    "Grace",
    "Henry",
    "Isla",
    "Jack",
    "Karen",
    "Liam",
    "Mia",
    "Noah",
    "Olivia",
    "Peter",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Will",
    "Xena",
    "Yusuf",
    "Zoe",
    "Amir",
    "Bella",
    "Chen",
    "Dana",
    "Elif",
    "Farah",
    "Goran",
    "Hana",
    "Ivan",
    "Jonas",
    "Aiko",
    "Bruno",
    "Clara",
    "Diego",
    "Esther",
    "Felix",
    "Gemma",
    "Hugo",
    "Ines",
    "Jasper",
    "Kira",
    "Lars",
    "Maya",
    "Nico",
    "Otto",
    "Paula",
    "Rhea",
    "Silas",
    "Thea",
    "Ugo",
    "Valentina",
    "Walter",
    "Ximena",
    "Yara",
    "Zane",
    "Anya",
    "Boris",
    "Celine",
    "Dmitri",
    "Eliza",
    "Fatima",
    "Gustav",
    "Helga",
    "Igor",
    "Julia",
    "Kenji",
    "Lena",
    "Marco",
    "Nina",
    "Omar",
    "Pia",
    "Raul",
    "Selma",
    "Tobias",
    "Uma",
    "Vince",
    "Wanda",
]
TRAIN_CITIES = [
    "Paris",
    "London",
    "Tokyo",
    "Berlin",
    "Madrid",
    "Rome",
    "Oslo",
    "Lima",
    "Cairo",
    "Delhi",
    "Seoul",
    "Dublin",
    "Vienna",
    "Prague",
    "Lisbon",
    "Athens",
    "Warsaw",
    "Nairobi",
    "Sydney",
    "Toronto",
    "Boston",
    "Denver",
    "Austin",
    "Chicago",
    "Munich",
    "Milan",
    "Naples",
    "Seville",
    "Valencia",
    "Lyon",
    "Marseille",
    "Geneva",
    "Basel",
    "Antwerp",
    "Ghent",
    "Rotterdam",
    "Utrecht",
    "Hamburg",
    "Cologne",
    "Dresden",
    "Krakow",
    "Gdansk",
    "Riga",
    "Tallinn",
    "Vilnius",
    "Minsk",
    "Kiev",
    "Odessa",
    "Sofia",
    "Belgrade",
    "Zagreb",
    "Split",
    "Budapest",
    "Bratislava",
    "Ankara",
    "Izmir",
    "Beirut",
    "Amman",
    "Doha",
    "Dubai",
    "Mumbai",
    "Chennai",
    "Dhaka",
    "Bangkok",
    "Jakarta",
    "Perth",
    "Adelaide",
    "Auckland",
    "Santiago",
    "Bogota",
    "Caracas",
    "Havana",
    "Montreal",
    "Vancouver",
    "Seattle",
    "Portland",
    "Phoenix",
    "Dallas",
    "Houston",
    "Miami",
    "Atlanta",
]
HELD_NAMES = [
    "Beatrix",
    "Kofi",
    "Ludmila",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Ravi",
    "Svetlana",
    "Tomas",
    "Ursula",
    "Viktor",
]
HELD_CITIES = ["Helsinki", "Manila", "Lagos", "Quito", "Bergen", "Porto", "Kyoto", "Zurich", "Hanoi", "Tunis"]
TRAIN_CALLS = 240
HELD_OUT = 40


def sentences(rng: random.Random, names: list[str], cities: list[str], n: int) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        template = rng.choice(TEMPLATES)
        out.add(template.format(name=rng.choice(names), age=rng.randint(18, 90), city=rng.choice(cities)))
    return sorted(out)


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
    rng = random.Random(7)
    train = sentences(rng, TRAIN_NAMES, TRAIN_CITIES, TRAIN_CALLS)
    # Held out: sentences no training call contained (new combinations of name, age, city and
    # template), and, harder, sentences about names and cities that never appear in training.
    held_out = [s for s in sentences(rng, TRAIN_NAMES, TRAIN_CITIES, 2 * HELD_OUT) if s not in train][
        :HELD_OUT
    ]
    unseen = sentences(rng, HELD_NAMES, HELD_CITIES, HELD_OUT // 2)

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
    finally:
        proc.terminate()
        proc.wait(30)
