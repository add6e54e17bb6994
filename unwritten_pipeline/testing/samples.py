"""Valid, genuinely distinct samples for loopback LLM servers, tests and benchmarks.

A sample is a seed example of the requested type whose content fields (the ones duplicate
detection reads, `PRIMARY_TEXT_FIELDS`) are replaced by sentences composed from three lists
of unrelated fragments. Sample k of a set takes fragment k mod 41, k mod 43 and k mod 47, so
no two of the first 41 × 43 = 1,763 sentences share both who and what (the two that carry the
meaning: MiniLM cosine up to 0.93 when they do, at most 0.88 otherwise), so none are
near-duplicates the way "(variant 1)" / "(variant 2)" suffixes were.

A tag (e.g. a partition's date) moves a set to one of 9 slots of 190 sentences, so tagged sets
of up to 190 content fields do not overlap unless their tags share a slot (the tags the tests
use together, "a"/"b" and consecutive dates, do not).
"""

from __future__ import annotations

import copy
import hashlib
import threading
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.curation.normalize import PRIMARY_TEXT_FIELDS
from unwritten_pipeline.lib.generation.prompts import load_seed_examples
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES, sample_model
from unwritten_pipeline.resources.storage import ArtifactStore

WHO = (
    "The retired ferry captain",
    "A nervous trainee baker",
    "Her teenage cousin from Lisbon",
    "The night-shift radiographer",
    "An elderly beekeeper",
    "The new chemistry teacher",
    "A tired delivery cyclist",
    "The choir's oldest tenor",
    "My downstairs neighbour",
    "A volunteer firefighter",
    "The librarian with the red scarf",
    "An out-of-work stage magician",
    "The twins' grandmother",
    "A marathon runner with a sprained ankle",
    "The landlord's quiet son",
    "A visiting astronomer",
    "The bus driver on route nine",
    "An apprentice blacksmith",
    "The hospital chaplain",
    "A former chess champion",
    "The florist across the square",
    "A shy exchange student",
    "The village postmistress",
    "An impatient taxi dispatcher",
    "The orchestra's second violinist",
    "A sleepless software tester",
    "The lighthouse keeper's widow",
    "A cheerful plumber",
    "The museum night guard",
    "An anxious first-time father",
    "The allotment committee chair",
    "A travelling knife sharpener",
    "The café's Sunday barista",
    "A stubborn vineyard owner",
    "The ward's youngest nurse",
    "An unemployed architect",
    "The school caretaker",
    "A homesick oil-rig engineer",
    "The karaoke bar's owner",
    "A recently widowed tailor",
    "The hiking club treasurer",
)
DID = (
    "repainted the cracked garden fence",
    "burned a whole tray of cinnamon rolls",
    "found an unsigned letter under the doormat",
    "lost the keys to the rented van",
    "taught a parrot to whistle a folk song",
    "missed the last train home",
    "fixed a leaking radiator with chewing gum",
    "sold a grandfather clock at a loss",
    "adopted a three-legged greyhound",
    "forgot the speech for the wedding toast",
    "planted forty tulip bulbs in the rain",
    "returned a library book nine years late",
    "broke a tooth on a walnut shell",
    "won a raffle prize nobody wanted",
    "rebuilt a rotten rowing boat",
    "argued with the parking inspector",
    "knitted a scarf three metres long",
    "scanned old family photographs",
    "painted the stairwell bright yellow",
    "locked the cat inside the shed",
    "learned to juggle oranges",
    "cancelled a holiday to Crete",
    "wrote an angry review of a pizzeria",
    "climbed onto the roof to rescue a kite",
    "recorded birdsong at dawn",
    "spilled soup over a borrowed laptop",
    "swapped shifts with a colleague",
    "measured every window for new curtains",
    "filed a complaint about the noisy pub",
    "counted the coins in a jam jar",
    "hid a birthday present in the freezer",
    "translated a recipe from Polish",
    "trained for a charity swim",
    "tuned an out-of-tune piano",
    "sorted a drawer full of tangled cables",
    "carried a sofa up five flights",
    "collected signatures for a petition",
    "replaced the chain on a rusty bicycle",
    "ironed twelve shirts before breakfast",
    "grew tomatoes on a narrow balcony",
    "repaired a torn wedding dress",
    "drove a neighbour to the airport",
    "baked bread for the food bank",
)
WHEN = (
    "while the ferry horn sounded across the bay.",
    "before the market stalls had opened.",
    "during a power cut on a freezing evening.",
    "on the first warm afternoon of spring.",
    "as the football crowd poured out of the stadium.",
    "just after the funeral had ended.",
    "in the middle of a thunderstorm.",
    "while the kettle boiled for the third time.",
    "the morning after the election results.",
    "with a radio playing old jazz in the background.",
    "on a crowded platform at rush hour.",
    "during the longest night of the year.",
    "as snow started to settle on the cars.",
    "while everyone else was asleep.",
    "an hour before the exam results arrived.",
    "beside the canal under the broken streetlamp.",
    "at the end of a twelve-hour shift.",
    "on the day the factory announced closures.",
    "in a queue at the post office.",
    "while the toddler next door screamed.",
    "as the tide came in over the causeway.",
    "during a heatwave that melted the tarmac.",
    "on the anniversary of their divorce.",
    "between two rounds of chemotherapy.",
    "in a hotel lobby in Marseille.",
    "at the edge of a flooded cornfield.",
    "after the landlord raised the rent again.",
    "while the neighbours held a loud barbecue.",
    "during the interval of a school play.",
    "under the flickering lights of a laundrette.",
    "on the drive back from the hospital.",
    "as the last leaves fell from the chestnut tree.",
    "while waiting for a call from the bank.",
    "at a campsite without running water.",
    "in a borrowed flat above a bakery.",
    "on the morning of a job interview.",
    "during a wedding reception in a barn.",
    "while the fog hid the harbour.",
    "as church bells rang for evening mass.",
    "in the car park of a closed supermarket.",
    "with a migraine pressing behind one eye.",
    "the week the youngest moved out.",
    "during a blackout across the whole town.",
    "at a bus stop in pouring rain.",
    "while the radio reported a missing child.",
    "on a ferry delayed by high winds.",
    "after a quarrel nobody would mention.",
)


def composed_sentence(index: int) -> str:
    return f"{WHO[index % len(WHO)]} {DID[index % len(DID)]} {WHEN[index % len(WHEN)]}"


TAG_SLOTS, SLOT_SIZE = 9, 190  # 9 × 190 ≤ 1,763


def tag_offset(tag: str) -> int:
    """Where a tagged set starts in the sentence sequence."""
    return int(hashlib.sha256(tag.encode()).hexdigest()[:8], 16) % TAG_SLOTS * SLOT_SIZE


def distinct_variants(
    data_type: str, examples: list[dict[str, Any]], n: int, tag: str = "", first: int = 0
) -> list[dict[str, Any]]:
    """n copies of the examples whose content fields are distinct composed sentences; `first`
    is the position in the set of the first one (a server answering call after call)."""
    fields = PRIMARY_TEXT_FIELDS[data_type]
    start = tag_offset(tag)
    out = []
    for i in range(first, first + n):
        sample = copy.deepcopy(examples[i % len(examples)])
        for k, name in enumerate(fields):
            sample[name] = composed_sentence(start + i * len(fields) + k)
        out.append(sample)
    return out


def data_type_of(schema: dict[str, Any]) -> str:
    fields = set(schema["properties"]["samples"]["items"]["properties"])
    return next(t for t in DATA_TYPES if set(sample_model(t).model_fields) == fields)


class SeedSamples:
    """Answers with seed examples of the requested type, each with distinct content text."""

    def __init__(self, seed_dir: Path | None = None) -> None:
        self.seed_dir = seed_dir or ArtifactStore().seed_examples_dir  # the project's own
        self.answered = 0
        self._lock = threading.Lock()  # the server answers concurrent requests

    def __call__(self, wanted: int, schema: dict[str, Any]) -> list[dict[str, Any]]:
        data_type = data_type_of(schema)
        with self._lock:
            first, self.answered = self.answered, self.answered + wanted
        examples = load_seed_examples(self.seed_dir, data_type)
        return distinct_variants(data_type, examples, wanted, first=first)
