"""The PersonalityModel's 325 token probabilities → five OCEAN trait scores.

`data/personality-tokens.json` orders the tokens by domain (its `domains` field gives each
domain's [start, end) range, OCEAN order) and, inside a domain, lists the high-pole adjectives
first (33: "imaginative" … "unconventional") and then the low-pole ones (32: "unimaginative" …
"rigid"). A trait's score is

    mean p(high-pole tokens) / (mean p(high-pole tokens) + mean p(low-pole tokens))

with p = sigmoid(logit): 0.5 when both poles are equally likely, towards 1 when the text reads
like the high pole. Means, not sums, so the 33/32 imbalance does not tilt the score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unwritten_pipeline.lib.multitask.tasks import OCEAN
from unwritten_pipeline.lib.personality.tokens import TokenFileError, load_tokens

HIGH_POLE_TOKENS = 33  # per domain, first in the domain's range (see the token file's description)


def token_poles(token_file: Path) -> np.ndarray:
    """(5, 325) matrix: +1 for a trait's high-pole tokens, -1 for its low-pole tokens, else 0."""
    tokens = load_tokens(token_file)
    domains = json.loads(token_file.read_text(encoding="utf-8")).get("domains")
    if not isinstance(domains, dict) or list(domains) != list(OCEAN):
        raise TokenFileError(
            f"{token_file}: field 'domains' must map {', '.join(OCEAN)} (in that order) "
            "to [start, end) token ranges"
        )
    poles = np.zeros((len(OCEAN), len(tokens)), dtype=np.float32)
    expected_start = 0
    for row, trait in enumerate(OCEAN):
        span = domains[trait]
        if (
            not isinstance(span, list)
            or len(span) != 2
            or span[0] != expected_start
            or not span[0] + HIGH_POLE_TOKENS < span[1] <= len(tokens)
        ):
            raise TokenFileError(
                f"{token_file}: field 'domains.{trait}' is {span!r}; expected [{expected_start}, "
                f"end] with more than {HIGH_POLE_TOKENS} tokens (high pole first)"
            )
        start, end = span
        poles[row, start : start + HIGH_POLE_TOKENS] = 1
        poles[row, start + HIGH_POLE_TOKENS : end] = -1
        expected_start = end
    if expected_start != len(tokens):
        raise TokenFileError(
            f"{token_file}: field 'domains' covers {expected_start} of {len(tokens)} tokens"
        )
    return poles


def traits_from_logits(logits: np.ndarray, poles: np.ndarray) -> np.ndarray:
    """(n, 325) raw logits → (n, 5) trait scores in [0, 1], OCEAN order."""
    probabilities = 1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64)))
    high = probabilities @ (poles > 0).T / (poles > 0).sum(1)
    low = probabilities @ (poles < 0).T / (poles < 0).sum(1)
    return high / np.clip(high + low, 1e-12, None)
