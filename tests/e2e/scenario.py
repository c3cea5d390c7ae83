"""The distillation task shared by the end-to-end test and ``bench/distill.py``: sentences about
people, the teacher's answer (the fake provider's ``teacher-extract``), and the held-out sets.

Held-out prompts are sentences no training call contained; the unseen set uses names and cities
that appear in no training sentence at all, so a student must have learned the task, not the
answers.
"""

from __future__ import annotations

import random

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


def split_sentences(seed: int = 7) -> tuple[list[str], list[str], list[str]]:
    """``(train, held_out, unseen)``: the training calls' sentences, new combinations of seen
    names and cities, and sentences about names and cities never seen."""
    rng = random.Random(seed)
    train = sentences(rng, TRAIN_NAMES, TRAIN_CITIES, TRAIN_CALLS)
    held_out = [s for s in sentences(rng, TRAIN_NAMES, TRAIN_CITIES, 2 * HELD_OUT) if s not in train][
        :HELD_OUT
    ]
    unseen = sentences(rng, HELD_NAMES, HELD_CITIES, HELD_OUT // 2)
    return train, held_out, unseen
