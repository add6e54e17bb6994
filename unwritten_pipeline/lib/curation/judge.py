"""The blind judge: a second reading of every sample that passed the rules.

The judge never sees what the generator said about its own sample: the LLM judge gets only
the content fields (`PRIMARY_TEXT_FIELDS`) and answers a per-type question in constrained JSON
(a label from a fixed set where the type has one, a relationship band, quality ratings and,
for narrative types, novel-quality and hook-value ratings, and yes/no for each finding
`rules.judge_requirements` names). For sentiment and personality the packaged encoder gives a
second opinion (zero-shot, `lib/evaluation/baselines.py`).

Every judge votes with the weight its measured accuracy on the human-labelled golden sets
earns (`judge_accuracy.json`, written by scripts/measure_judges.py): accuracy at chance weighs
0, always right weighs 1. The encoder's weight depends on how sure it is: its golden accuracy
was measured per confidence bin (sentiment: per predicted label, by the margin between the
nearest and the second-nearest label description; personality: by the distance of the trait's
pole difference from the batch mean, on the keyed Big Five items), and each opinion weighs what
its bin earned. A label is checked only when the judges that have an opinion weigh at least
`min_label_weight` together, so a weak or unsure judge never decides alone, a confident one
where it is measurably right does; then the weighted share agreeing with the sample must reach
`min_label_agreement`.
The quality thresholds read the LLM judge's ratings, never the generator's `quality_score`.

A judge call that fails (server down, timeout, unparseable answer) decides nothing: the sample
stays pending and is judged on the next run. Verdicts are cached per sample hash and judge
identity, so re-running curation does not call the judge again.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unwritten_pipeline.lib.curation.normalize import PRIMARY_TEXT_FIELDS, exact_hash, primary_text
from unwritten_pipeline.lib.curation.rules import JUDGE_FINDINGS, Violation, judge_requirements
from unwritten_pipeline.lib.curation.validate import PartitionValidation, Record
from unwritten_pipeline.lib.evaluation.baselines import (
    SENTIMENT_DESCRIPTIONS,
    Encoder,
    zero_shot_traits,
)
from unwritten_pipeline.lib.generation.schemas import sample_model
from unwritten_pipeline.lib.llm.base import (
    ChatRequest,
    LLMBackend,
    LLMError,
    LLMUnavailableError,
)
from unwritten_pipeline.lib.multitask.tasks import OCEAN, SENTIMENT_LABELS
from unwritten_pipeline.lib.storage.files import read_json, write_bytes_atomic, write_json_atomic

JUDGE_PROMPT_VERSION = "1"  # part of the cache key: a changed prompt judges again
ACCURACY_FILE = Path(__file__).with_name("judge_accuracy.json")

LABEL_DISAGREES = "judge.label_disagrees"
QUALITY_BELOW = "judge.quality_below"
FINDING_NOT_CONFIRMED = "judge.finding_not_confirmed"
UNAVAILABLE = "judge.unavailable"

LLM_JUDGE, ENCODER_JUDGE = "llm", "encoder"
ENCODER_TYPES = ("sentiment", "personality_traits")  # the encoder has an opinion on these
CHANCE = 1 / 3  # the golden sentiment set is balanced over three labels
# judge_accuracy.json: the entry holding the encoder's confidence bins, per type
ENCODER_CALIBRATION = {"sentiment": "encoder", "personality_traits": "encoder_personality"}
ANY_LABEL = "*"  # bins that hold for every opinion label

# docs/domain.md: relationship score bands
RELATIONSHIP_BANDS = (("damages", 0.3), ("neutral", 0.5), ("builds", 0.7), ("strong_bond", 1.01))
NARRATIVE_TYPES = (
    "emotional_authenticity",
    "dramatic_irony",
    "tension_building",
    "memory_resonance",
)
# the field holding the label the judge classifies, per type (sentiment: label, narrative: type)
LABEL_FIELDS = {
    "sentiment": "sentiment",
    "tension_building": "tension_type",
    "memory_resonance": "resonance_type",
}
QUESTIONS = {
    "sentiment": "Which sentiment does the writer of this text express?",
    "relationship_scoring": (
        "What does this interaction do to the relationship between the two people? "
        "damages it, neutral, builds it, or a strong bond."
    ),
    "personality_traits": "How well-written and natural is this line of dialogue?",
    "emotional_authenticity": "Read how the character responds to someone who needs support.",
    "dramatic_irony": "The player knows something the character does not. Read the response.",
    "tension_building": "Which kind of narrative tension does this scene build?",
    "memory_resonance": "How does the past memory resonate with the present situation?",
}


def relationship_band(score: float) -> str:
    return next(name for name, upper in RELATIONSHIP_BANDS if score < upper)


def label_choices(data_type: str) -> tuple[str, ...]:
    if data_type == "relationship_scoring":
        return tuple(name for name, _ in RELATIONSHIP_BANDS)
    if data_type in LABEL_FIELDS:
        schema = sample_model(data_type).model_json_schema()
        return tuple(schema["properties"][LABEL_FIELDS[data_type]]["enum"])
    return ()


def dominant_pole(traits: dict[str, float]) -> str:
    """The trait furthest from the middle, and its side: "openness:high"."""
    trait = max(OCEAN, key=lambda t: abs(float(traits[t]) - 0.5))
    return f"{trait}:{'high' if float(traits[trait]) >= 0.5 else 'low'}"


def sample_label(data_type: str, sample: dict[str, Any]) -> str | None:
    """What the generator says the sample is (never shown to the judge)."""
    if data_type == "relationship_scoring":
        return relationship_band(float(sample["score"]))
    if data_type == "personality_traits":
        return dominant_pole(sample["traits"])
    return sample.get(LABEL_FIELDS[data_type]) if data_type in LABEL_FIELDS else None


# ---- the encoder's second opinion ------------------------------------------------------


@dataclass(frozen=True)
class Opinion:
    """A judge's label for a sample and how sure it is, on the scale its confidence bins in
    judge_accuracy.json were measured on (larger: surer)."""

    label: str
    confidence: float


def sentiment_opinions(embeddings: np.ndarray, encoder: Encoder) -> list[Opinion]:
    """The label whose description is nearest (the evaluation baseline's zero-shot label);
    confidence: its cosine margin over the second-nearest description."""
    descriptions = encoder.encode([SENTIMENT_DESCRIPTIONS[label] for label in SENTIMENT_LABELS])
    similarities = embeddings @ descriptions.T
    ranked = np.sort(similarities, axis=1)
    margins = ranked[:, -1] - ranked[:, -2]
    return [
        Opinion(SENTIMENT_LABELS[int(i)], float(m))
        for i, m in zip(similarities.argmax(axis=1), margins, strict=True)
    ]


def trait_pole_opinions(
    embeddings: np.ndarray, encoder: Encoder, traits: Sequence[str]
) -> list[Opinion]:
    """Per text, the side of its trait: high-minus-low pole similarity, centred on the mean
    of the texts judged together (the raw difference is biased per trait); confidence: the
    distance from that mean."""
    poles = zero_shot_traits(embeddings, encoder)
    poles = poles - poles.mean(axis=0, keepdims=True)
    out = []
    for row, trait in zip(poles, traits, strict=True):
        value = float(row[OCEAN.index(trait)])
        out.append(Opinion(f"{trait}:{'high' if value >= 0 else 'low'}", abs(value)))
    return out


def encoder_opinions(encoder: Encoder) -> EncoderOpinions:
    """Zero-shot opinions of the packaged encoder (the evaluation baselines' descriptions).

    sentiment: the nearest label description. personality_traits: for the trait the sample
    scores most extreme, the side of the trait's poles, centred on the batch.
    """

    def opinions(data_type: str, samples: list[dict[str, Any]]) -> list[Opinion | None]:
        if data_type not in ENCODER_TYPES or not samples:
            return [None] * len(samples)
        embeddings = encoder.encode([primary_text(data_type, s) for s in samples])
        if data_type == "sentiment":
            return list(sentiment_opinions(embeddings, encoder))
        traits = [dominant_pole(s["traits"]).split(":")[0] for s in samples]
        return list(trait_pole_opinions(embeddings, encoder, traits))

    return opinions


# ---- the LLM judge's request and answer ---------------------------------------------


def verdict_schema(data_type: str, findings: Sequence[str]) -> dict[str, Any]:
    unit = {"type": "number", "minimum": 0, "maximum": 1}
    properties: dict[str, Any] = {}
    if label_choices(data_type):
        properties["label"] = {"type": "string", "enum": list(label_choices(data_type))}
    properties["quality"] = unit
    if data_type in NARRATIVE_TYPES:
        properties["novel_quality"] = unit
        properties["hook_value"] = unit
    for name in findings:
        properties[name] = {"type": "boolean"}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def judge_messages(
    data_type: str, sample: dict[str, Any], findings: Sequence[str]
) -> list[dict[str, str]]:
    """Only the content fields: the generator's labels and scores stay out of the prompt."""
    content = "\n".join(
        f"{name}: {sample.get(name, '')}" for name in PRIMARY_TEXT_FIELDS[data_type]
    )
    asks = [QUESTIONS[data_type]]
    if label_choices(data_type):
        asks.append(f"label: one of {', '.join(label_choices(data_type))}.")
    asks.append("quality: 0 to 1, how well written, specific and believable it is.")
    if data_type in NARRATIVE_TYPES:
        asks.append("novel_quality: 0 to 1, would it read well in a literary novel.")
        asks.append("hook_value: 0 to 1, how much it makes a player want to know more.")
    asks += [f"{name}: true or false. {JUDGE_FINDINGS[name]}" for name in findings]
    return [
        {
            "role": "system",
            "content": "You review training data for a narrative game. Answer with JSON only.",
        },
        {"role": "user", "content": f"{content}\n\n" + "\n".join(asks)},
    ]


def judge_request(
    data_type: str, sample: dict[str, Any], findings: Sequence[str], model: str
) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=judge_messages(data_type, sample, findings),
        schema=verdict_schema(data_type, findings),
        temperature=0.0,
        top_k=1,
        max_tokens=96,
    )


class VerdictError(ValueError):
    """The judge answered, but not a verdict of the requested shape."""


def parse_verdict(data_type: str, data: dict[str, Any], findings: Sequence[str]) -> dict[str, Any]:
    """The verdict's fields checked one by one (a server may ignore the schema)."""
    schema = verdict_schema(data_type, findings)
    verdict = {}
    for name, spec in schema["properties"].items():
        value = data.get(name)
        ok = {
            "string": lambda v, s=spec: v in s["enum"],
            "number": lambda v: (
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
            ),
            "boolean": lambda v: isinstance(v, bool),
        }[spec["type"]](value)
        if not ok:
            raise VerdictError(f"verdict field {name!r} is {value!r}, expected {spec}")
        verdict[name] = value
    return verdict


def backend_judge(backend: LLMBackend, model: str) -> LLMJudge:
    """The LLM judge over a backend: one call per sample, one retry of a failed call."""

    def judge(data_type: str, sample: dict[str, Any], findings: Sequence[str]) -> dict[str, Any]:
        request = judge_request(data_type, sample, findings, model)
        for attempt in range(2):
            try:
                return parse_verdict(data_type, backend.chat(request).data, findings)
            except LLMUnavailableError:
                raise
            except (LLMError, VerdictError):
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    return judge


def judge_identity(backend: str, model: str) -> str:
    """Which judge said it: a verdict of another backend, model or prompt is not reused."""
    return f"{backend}:{model}:prompt-v{JUDGE_PROMPT_VERSION}"


# ---- cache ---------------------------------------------------------------------------


class VerdictCache:
    """One JSON file per sample hash: {judge identity: verdict}."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, sample_hash: str) -> Path:
        return self.directory / f"{sample_hash}.json"

    def get(self, sample_hash: str, identity: str) -> dict[str, Any] | None:
        path = self._path(sample_hash)
        if not path.is_file():
            return None
        try:
            return read_json(path).get(identity)
        except (OSError, ValueError, AttributeError):
            return None  # a damaged entry is judged again and rewritten

    def put(self, sample_hash: str, identity: str, verdict: dict[str, Any]) -> None:
        path = self._path(sample_hash)
        entries = {}
        if path.is_file():
            try:
                entries = read_json(path)
            except (OSError, ValueError):
                entries = {}
        write_json_atomic(path, {**entries, identity: verdict})


# ---- policy and decisions ------------------------------------------------------------


def accuracy_weight(accuracy: float, chance: float = CHANCE) -> float:
    """0 at chance, 1 when always right."""
    return max(0.0, (accuracy - chance) / (1 - chance))


def measured_weights(path: Path = ACCURACY_FILE) -> dict[str, float]:
    """Judge name → weight from the measured golden-set accuracies."""
    try:
        judges = json.loads(path.read_text(encoding="utf-8"))["judges"]
        return {
            name: accuracy_weight(float(judges[name]["accuracy"]))
            for name in (LLM_JUDGE, ENCODER_JUDGE)
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: judges.<name>.accuracy unreadable ({exc})") from None


@dataclass(frozen=True)
class ConfidenceBins:
    """One judge's measured accuracy by confidence, per opinion label (`ANY_LABEL`: all).
    Bin i holds confidences in [edges[i-1], edges[i]); its weight is `accuracy_weight` of the
    golden accuracy measured in it. A label without bins weighs 0."""

    edges: dict[str, tuple[float, ...]]
    weights: dict[str, tuple[float, ...]]

    def weight(self, opinion: Opinion) -> float:
        key = opinion.label if opinion.label in self.weights else ANY_LABEL
        if key not in self.weights:
            return 0.0
        return self.weights[key][bisect_right(self.edges[key], opinion.confidence)]

    @property
    def max_weight(self) -> float:
        return max((w for row in self.weights.values() for w in row), default=0.0)


class BinTableError(ValueError):
    """judge_accuracy.json's confidence bins are missing or malformed."""


def _number_list(path: Path, where: str, value: Any, length: int | None = None) -> list[float]:
    ok = isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    )
    if not ok or (length is not None and len(value) != length):
        wanted = f"a list of {length} numbers" if length is not None else "a list of numbers"
        raise BinTableError(f"{path}: field {where}: expected {wanted}, got {value!r}")
    return [float(v) for v in value]


def parse_bins(path: Path, where: str, table: Any) -> ConfidenceBins:
    """`{"chance": c, "by_opinion": {label: {"edges": [...], "n": [...], "accuracy": [...]}}}`
    at `where` in `path`; every figure checked, every error naming the file and field."""
    if not isinstance(table, dict) or not isinstance(table.get("by_opinion"), dict):
        raise BinTableError(f"{path}: field {where}.by_opinion: missing or not an object")
    chance = table.get("chance")
    if not isinstance(chance, (int, float)) or not 0 < chance < 1:
        raise BinTableError(
            f"{path}: field {where}.chance: expected 0 < chance < 1, got {chance!r}"
        )
    edges, weights = {}, {}
    for label, row in table["by_opinion"].items():
        field_name = f"{where}.by_opinion.{label}"
        if not isinstance(row, dict):
            raise BinTableError(f"{path}: field {field_name}: expected an object, got {row!r}")
        cuts = _number_list(path, f"{field_name}.edges", row.get("edges"))
        if cuts != sorted(cuts):
            raise BinTableError(f"{path}: field {field_name}.edges: not ascending: {cuts}")
        _number_list(path, f"{field_name}.n", row.get("n"), len(cuts) + 1)
        accuracy = _number_list(path, f"{field_name}.accuracy", row.get("accuracy"), len(cuts) + 1)
        if not all(0 <= a <= 1 for a in accuracy):
            raise BinTableError(f"{path}: field {field_name}.accuracy: outside [0, 1]: {accuracy}")
        edges[label] = tuple(cuts)
        weights[label] = tuple(accuracy_weight(a, float(chance)) for a in accuracy)
    if not weights:
        raise BinTableError(f"{path}: field {where}.by_opinion: no bins")
    return ConfidenceBins(edges, weights)


def measured_encoder_bins(path: Path = ACCURACY_FILE) -> dict[str, ConfidenceBins]:
    """Data type → the encoder's confidence bins, as measured on the golden sets."""
    try:
        judges = json.loads(path.read_text(encoding="utf-8"))["judges"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BinTableError(f"{path}: field judges unreadable ({exc})") from None
    out = {}
    for data_type, name in ENCODER_CALIBRATION.items():
        entry = judges.get(name) if isinstance(judges, dict) else None
        where = f"judges.{name}.confidence"
        if not isinstance(entry, dict) or "confidence" not in entry:
            raise BinTableError(f"{path}: field {where}: missing (scripts/measure_judges.py)")
        out[data_type] = parse_bins(path, where, entry["confidence"])
    return out


@dataclass(frozen=True)
class JudgePolicy:
    """When the judges' opinions accept a sample; every figure configurable per run.

    A label is checked when the judges with an opinion weigh `min_label_weight` together;
    the LLM judge's ratings and findings are enforced when it weighs `min_llm_weight` alone.
    Below that, its verdict is recorded (advisory) and decides nothing. The encoder's opinion
    on a type in `encoder_bins` weighs what its confidence bin earned; elsewhere (or without
    bins) it weighs `weights["encoder"]`.
    """

    weights: dict[str, float]
    encoder_bins: dict[str, ConfidenceBins] = field(default_factory=dict)
    min_label_weight: float = 0.5
    min_label_agreement: float = 0.5
    min_llm_weight: float = 0.2
    min_quality: float | None = None
    min_novel_quality: float = 0.7
    min_hook_value: float = 0.6

    def weight(self, judge: str) -> float:
        return self.weights.get(judge, 0.0)

    def opinion_weight(self, judge: str, data_type: str, opinion: Opinion | None) -> float:
        if opinion is None:
            return 0.0
        if judge == ENCODER_JUDGE and data_type in self.encoder_bins:
            return self.encoder_bins[data_type].weight(opinion)
        return self.weight(judge)

    def max_weight(self, judge: str, data_type: str) -> float:
        """The most one opinion of `judge` can weigh on `data_type`."""
        if judge == ENCODER_JUDGE and data_type in self.encoder_bins:
            return self.encoder_bins[data_type].max_weight
        return self.weight(judge)

    def encoder_votes(self, data_type: str) -> bool:
        return data_type in ENCODER_TYPES and self.max_weight(ENCODER_JUDGE, data_type) > 0

    @property
    def llm_decides(self) -> bool:
        return self.weight(LLM_JUDGE) >= self.min_llm_weight

    def llm_matters(self, data_type: str) -> bool:
        """Whether the LLM judge's verdict can change a decision: it decides, or its vote can
        complete a label check's weight. If not, asking it only costs time."""
        if self.llm_decides:
            return True
        others = self.max_weight(ENCODER_JUDGE, data_type) if self.encoder_votes(data_type) else 0
        llm = self.weight(LLM_JUDGE)
        return llm > 0 and llm + others >= self.min_label_weight


@dataclass
class Decision:
    sample_hash: str
    violations: list[Violation] = field(default_factory=list)
    pending: str | None = None  # why no verdict yet
    label: str | None = None  # what the generator says (compared, never shown)
    opinions: dict[str, str | None] = field(default_factory=dict)  # judge → label
    weights: dict[str, float] = field(default_factory=dict)  # judge → its opinion's weight
    label_checked: bool = False
    label_agrees: bool | None = None
    verdict: dict[str, Any] | None = None


def label_violations(decision: Decision, label: str | None, policy: JudgePolicy) -> list[Violation]:
    def weight(judge: str) -> float:  # this opinion's weight, else the judge's fixed one
        return decision.weights.get(judge, policy.weight(judge))

    voters = {j: o for j, o in decision.opinions.items() if o is not None and weight(j) > 0}
    total = sum(weight(j) for j in voters)
    if label is None or total < policy.min_label_weight:
        return []
    decision.label_checked = True
    agreeing = sum(weight(j) for j, o in voters.items() if o == label)
    decision.label_agrees = agreeing / total >= policy.min_label_agreement
    if decision.label_agrees:
        return []
    said = ", ".join(f"{j} says {o} (weight {weight(j):.2f})" for j, o in voters.items())
    return [
        Violation(
            LABEL_DISAGREES,
            f"sample labelled {label}; {said}: {agreeing / total:.0%} agreement "
            f"< {policy.min_label_agreement:.0%}",
        )
    ]


def rating_violations(verdict: dict[str, Any], policy: JudgePolicy) -> list[Violation]:
    minimums = {
        "quality": policy.min_quality,
        "novel_quality": policy.min_novel_quality,
        "hook_value": policy.min_hook_value,
    }
    below = [
        f"{name} {verdict[name]:g} < {minimum:g}"
        for name, minimum in minimums.items()
        if minimum is not None and name in verdict and verdict[name] < minimum
    ]
    return [Violation(QUALITY_BELOW, "judge rates " + "; ".join(below))] if below else []


def finding_violations(verdict: dict[str, Any], findings: Sequence[str]) -> list[Violation]:
    return [
        Violation(FINDING_NOT_CONFIRMED, f"judge does not confirm {name}: {JUDGE_FINDINGS[name]}")
        for name in findings
        if verdict.get(name) is not True
    ]


# ---- the pass over one partition -------------------------------------------------------

LLMJudge = Callable[[str, dict[str, Any], Sequence[str]], dict[str, Any]]
EncoderOpinions = Callable[[str, list[dict[str, Any]]], list[Opinion | None]]


@dataclass
class JudgeRun:
    decisions: list[Decision]
    llm_asked: bool = True  # False: the LLM judge was dropped for weighing too little
    llm_calls: int = 0
    cache_hits: int = 0
    failures: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        decided = [d for d in self.decisions if d.pending is None]
        checked = [d for d in decided if d.label_checked]
        per_judge = Counter()
        for d in checked:
            for judge, opinion in d.opinions.items():
                per_judge[judge] += opinion is not None
        return {
            "judged": len(decided),
            "pending": len(self.decisions) - len(decided),
            "accepted_by_judge": sum(not d.violations for d in decided),
            "label_checked": len(checked),
            "label_agreement": round(sum(bool(d.label_agrees) for d in checked) / len(checked), 4)
            if checked
            else None,
            "judge_agreement": agreement_by_judge(self.decisions),
            "llm_calls": self.llm_calls,
            "cache_hits": self.cache_hits,
            "failures": dict(self.failures),
            "rejects_by_reason": dict(
                Counter(v.code for d in decided for v in d.violations).most_common()
            ),
        }


def agreement_by_judge(decisions: Sequence[Decision]) -> dict[str, float]:
    """Per judge: the share of labelled samples it agrees with (where it had an opinion)."""
    out = {}
    for judge in (LLM_JUDGE, ENCODER_JUDGE):
        pairs = [
            (d.opinions[judge], d.label)
            for d in decisions
            if d.opinions.get(judge) is not None and d.label is not None
        ]
        if pairs:
            out[judge] = round(sum(o == label for o, label in pairs) / len(pairs), 4)
    return out


def judge_samples(
    data_type: str,
    samples: Sequence[dict[str, Any]],
    *,
    llm_judge: LLMJudge | None,
    identity: str,
    cache: VerdictCache,
    policy: JudgePolicy,
    encoder_opinions: EncoderOpinions | None = None,
) -> JudgeRun:
    """One decision per sample, in order: violations (rejected), none (accepted) or pending.
    Without an LLM judge (dropped: it weighs too little to change anything) the encoder's
    opinions alone are weighed."""
    run = JudgeRun([], llm_asked=llm_judge is not None)
    encoder_says = (
        encoder_opinions(data_type, list(samples)) if encoder_opinions else [None] * len(samples)
    )
    server_down: str | None = None
    for sample, encoder_opinion in zip(samples, encoder_says, strict=True):
        decision = Decision(exact_hash(sample))
        run.decisions.append(decision)
        findings = judge_requirements(data_type, sample)
        verdict = cache.get(decision.sample_hash, identity) if llm_judge else {}
        if llm_judge is None:
            pass
        elif verdict is not None:
            run.cache_hits += 1
        elif server_down:
            decision.pending = server_down
            continue
        else:
            try:
                verdict = llm_judge(data_type, sample, findings)
                run.llm_calls += 1
            except LLMUnavailableError as exc:
                server_down = decision.pending = f"{UNAVAILABLE}: {exc}"
                run.failures["unavailable"] += 1
                continue
            except (LLMError, VerdictError) as exc:
                decision.pending = f"{UNAVAILABLE}: {exc}"
                run.failures[type(exc).__name__] += 1
                continue
            cache.put(decision.sample_hash, identity, verdict)
        decide(decision, data_type, sample, verdict, encoder_opinion, findings, policy)
    return run


def decide(
    decision: Decision,
    data_type: str,
    sample: dict[str, Any],
    verdict: dict[str, Any],
    encoder_opinion: Opinion | None,
    findings: Sequence[str],
    policy: JudgePolicy,
) -> None:
    label = decision.label = sample_label(data_type, sample)
    decision.opinions = {
        LLM_JUDGE: verdict.get("label"),
        ENCODER_JUDGE: encoder_opinion.label if encoder_opinion else None,
    }
    decision.weights = {
        LLM_JUDGE: policy.weight(LLM_JUDGE),
        ENCODER_JUDGE: policy.opinion_weight(ENCODER_JUDGE, data_type, encoder_opinion),
    }
    decision.verdict = verdict or None
    decision.violations = label_violations(decision, label, policy)
    if policy.llm_decides:
        decision.violations += rating_violations(verdict, policy)
        decision.violations += finding_violations(verdict, findings)


# ---- applying the decisions to a validated partition ------------------------------------

PENDING_FILE = "pending.jsonl"


def apply_decisions(result: PartitionValidation, decisions: Sequence[Decision]) -> list[Record]:
    """Move the judged samples of `result.accepted` (in order, one decision each): rejected
    with the judge's reasons, or pending (returned) when the judge could not answer."""
    if len(decisions) != len(result.accepted):
        raise ValueError(f"{len(decisions)} decisions for {len(result.accepted)} samples")
    accepted, pending = [], []
    for record, decision in zip(result.accepted, decisions, strict=True):
        if decision.pending is not None:
            record.reasons = [Violation(UNAVAILABLE, decision.pending)]
            pending.append(record)
        elif decision.violations:
            record.reasons = decision.violations
            result.rejected.append(record)
        else:
            accepted.append(record)
    result.accepted = accepted
    return pending


def write_pending(out_dir: Path, result: PartitionValidation, pending: Sequence[Record]) -> None:
    """Samples waiting for a judge (judged on the next run); an empty file when none."""
    rows = [r.to_json(result.data_type, result.date) for r in pending]
    write_bytes_atomic(
        out_dir / PENDING_FILE,
        "".join(
            json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows
        ).encode(),
    )
