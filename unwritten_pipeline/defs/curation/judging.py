"""validated_samples' blind-judge pass: configuration, the lazily opened judge backend and
encoder, and the metadata it adds (lib/curation/judge.py holds the logic)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import dagster as dg
from pydantic import Field

from unwritten_pipeline.lib.curation.judge import (
    ENCODER_JUDGE,
    LLM_JUDGE,
    JudgePolicy,
    JudgeRun,
    VerdictCache,
    backend_judge,
    encoder_opinions,
    judge_identity,
    judge_samples,
    measured_encoder_bins,
    measured_weights,
)
from unwritten_pipeline.lib.llm.base import LLMBackend, LLMError, LLMUnavailableError
from unwritten_pipeline.lib.personality.embeddings import DEFAULT_ENCODER, LocalEncoder
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore


class JudgeConfig(dg.Config):
    enabled: bool = Field(default=True, description="run the blind judge after the rules")
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="judge weights (llm, encoder) instead of the measured ones "
        "(lib/curation/judge_accuracy.json); a given encoder weight replaces the encoder's "
        "measured confidence bins",
    )
    min_label_weight: float = Field(
        default=0.5, description="judges with an opinion must weigh this much for a label check"
    )
    min_label_agreement: float = Field(
        default=0.5, description="weighted share of those judges that must agree with the label"
    )
    min_llm_weight: float = Field(
        default=0.2, description="the LLM judge's ratings and findings decide from this weight"
    )
    min_novel_quality: float = Field(default=0.7, description="narrative types, docs/domain.md")
    min_hook_value: float = Field(default=0.6, description="narrative types, docs/domain.md")
    encoder: str = Field(
        default=DEFAULT_ENCODER, description="the encoder giving the zero-shot second opinion"
    )
    ask_dropped_llm: bool = Field(
        default=False,
        description="ask the LLM judge even when its weight cannot change a decision (its "
        "verdicts are then recorded only)",
    )

    def policy(self, min_quality: float | None) -> JudgePolicy:
        given_all = {LLM_JUDGE, ENCODER_JUDGE} <= set(self.weights)
        return JudgePolicy(
            weights=dict(self.weights) if given_all else {**measured_weights(), **self.weights},
            encoder_bins={} if ENCODER_JUDGE in self.weights else measured_encoder_bins(),
            min_label_weight=self.min_label_weight,
            min_label_agreement=self.min_label_agreement,
            min_llm_weight=self.min_llm_weight,
            min_quality=min_quality,
            min_novel_quality=self.min_novel_quality,
            min_hook_value=self.min_hook_value,
        )


@functools.lru_cache(maxsize=2)
def shared_encoder(name: str) -> LocalEncoder:
    """One loaded encoder per process: the judge's opinions and the near-duplicate check of
    every materialization in this process share it (loading takes seconds)."""
    return LocalEncoder(name)


class LazyJudge:
    """Opens the judge backend on the first cache miss only (a fully cached partition never
    loads a model); a server that is down or lacks the model fails every call at once."""

    def __init__(self, llm: LLMResource, store: ArtifactStore, model: str) -> None:
        self.llm, self.store, self.model = llm, store, model
        self.backend: LLMBackend | None = None
        self._judge = None

    def __call__(self, data_type: str, sample: dict[str, Any], findings: Sequence[str]):
        if self._judge is None:
            backend = self.llm.open_judge_backend(self.store.layout.model_cache_dir)
            try:
                backend.check([self.model])
            except LLMError as exc:
                backend.close()
                raise LLMUnavailableError(str(exc)) from None
            self.backend, self._judge = backend, backend_judge(backend, self.model)
        return self._judge(data_type, sample, findings)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def run_judge(
    data_type: str,
    samples: list[dict[str, Any]],
    *,
    config: JudgeConfig,
    policy: JudgePolicy,
    llm: LLMResource,
    store: ArtifactStore,
) -> JudgeRun:
    model = llm.judge_model_for(data_type)
    judge = LazyJudge(llm, store, model)
    # a judge that weighs nothing is not asked (loading the encoder takes seconds, the
    # embedded LLM a few seconds per sample)
    opinions = (
        encoder_opinions(shared_encoder(config.encoder))
        if policy.encoder_votes(data_type) and samples
        else None
    )
    ask_llm = config.ask_dropped_llm or policy.llm_matters(data_type)
    try:
        return judge_samples(
            data_type,
            samples,
            llm_judge=judge if ask_llm else None,
            identity=judge_identity(llm.judge_backend_name(), model),
            cache=VerdictCache(store.layout.judge_cache_dir(data_type)),
            policy=policy,
            encoder_opinions=opinions,
        )
    finally:
        judge.close()


def judge_metadata(run: JudgeRun | None, policy: JudgePolicy | None, identity: str) -> dict:
    if run is None or policy is None:
        return {"judge": "off"}
    summary = run.summary()
    return {
        "judge": identity
        if run.llm_asked
        else f"{identity} (dropped: weight "
        f"{policy.weight(LLM_JUDGE):.2f} cannot change a decision; judge.ask_dropped_llm)",
        "judge_pending": summary["pending"],
        "judge_label_checked": summary["label_checked"],
        "judge_label_agreement": dg.MetadataValue.float(summary["label_agreement"])
        if summary["label_agreement"] is not None
        else dg.MetadataValue.text("no label checked"),
        "judge_agreement_by_judge": dg.MetadataValue.json(summary["judge_agreement"]),
        "judge_rejects_by_reason": dg.MetadataValue.json(summary["rejects_by_reason"]),
        "judge_weights": dg.MetadataValue.json(
            {name: round(weight, 4) for name, weight in policy.weights.items()}
        ),
        "judge_encoder_bin_weights": dg.MetadataValue.json(
            {
                data_type: {
                    label: [round(w, 3) for w in row] for label, row in bins.weights.items()
                }
                for data_type, bins in policy.encoder_bins.items()
            }
        ),
        "judge_llm_decides": policy.llm_decides,
        "judge_llm_calls": run.llm_calls,
        "judge_cache_hits": run.cache_hits,
        "judge_failures": dg.MetadataValue.json(dict(run.failures)),
    }
