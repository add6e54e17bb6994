"""Near-duplicates across every partition of a type: caught by the packaged encoder's cosine,
oldest kept, each removal naming its kept twin."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pytest

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.curation.judging import shared_encoder
from unwritten_pipeline.lib.curation.dedup import (
    NEAR_DUPLICATE,
    Candidate,
    near_duplicates,
    shingle_jaccard,
)
from unwritten_pipeline.lib.curation.splits import build_splits, drop_near_duplicates
from unwritten_pipeline.lib.personality.embeddings import DEFAULT_ENCODER
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import distinct_samples, write_validated_samples

PARAPHRASE = ("I am the best version of myself today.", "I'm the best version of myself today.")


@pytest.fixture(scope="module")
def encoder():
    return shared_encoder(DEFAULT_ENCODER)  # the one training_splits uses in this process


def test_cosine_catches_a_paraphrase_that_shingles_miss(encoder):
    a, b = encoder.encode(list(PARAPHRASE))
    assert float(a @ b) >= 0.9
    assert shingle_jaccard(*PARAPHRASE) < 0.6


def _two_dates_with_a_paraphrase(root):
    older = distinct_samples("sentiment", 6, "a")
    older[2]["text"] = PARAPHRASE[0]
    newer = distinct_samples("sentiment", 6, "b")
    newer[4]["text"] = PARAPHRASE[1]
    write_validated_samples(root, "sentiment", "2026-11-20", older)
    write_validated_samples(root, "sentiment", "2026-11-21", newer)
    write_validated_samples(
        root, "personality_traits", "2026-11-21", distinct_samples("personality_traits", 4)
    )


def test_near_duplicates_across_partitions_keep_the_oldest_and_name_it(tmp_path, encoder):
    _two_dates_with_a_paraphrase(tmp_path)

    result = build_splits(tmp_path)
    drop_near_duplicates(result, encoder.encode, 0.9)

    [found] = result.near_duplicates
    assert found.removed.partition == "sentiment|2026-11-21"
    assert found.kept.partition == "sentiment|2026-11-20"
    assert (found.kept.text, found.removed.text) == PARAPHRASE
    row = found.to_json()
    assert row["code"] == NEAR_DUPLICATE and row["kept_id"] == found.kept.id
    assert "sentiment|2026-11-20" in row["message"]
    assert len(result.rows) == 15 and PARAPHRASE[1] not in {r["text"] for r in result.rows}
    assert result.near_duplicates_by_type() == {"sentiment": 1}
    assert sum(result.counts.values()) == 15


def test_types_are_never_compared_with_each_other():
    same = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    pair = [Candidate("a", "sentiment", "p", "x"), Candidate("b", "personality_traits", "p", "x")]
    assert near_duplicates(pair, same) == []
    twins = [Candidate("a", "sentiment", "p", "x"), Candidate("b", "sentiment", "q", "x")]
    [found] = near_duplicates(twins, same)
    assert (found.removed.id, found.kept.id, found.cosine) == ("b", "a", 1.0)


def test_training_splits_leaves_them_out_and_lists_them(tmp_path, encoder):
    _two_dates_with_a_paraphrase(tmp_path)
    result = dg.materialize(
        [training_splits],
        resources={"store": ArtifactStore(data_root=str(tmp_path))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    [materialization] = result.asset_materializations_for_node("training_splits")
    meta = materialization.metadata
    assert (meta["samples"].value, meta["near_duplicates"].value) == (15, 1)
    assert meta["near_duplicates_by_type"].value == {"sentiment": 1}
    lines = Layout(tmp_path).near_duplicates_file.read_text().splitlines()
    [listed] = [json.loads(line) for line in lines]
    assert (listed["partition"], listed["kept_partition"]) == (
        "sentiment|2026-11-21",
        "sentiment|2026-11-20",
    )
    lineage = json.loads((Layout(tmp_path).splits_dir / "lineage.json").read_text())
    assert lineage["near_duplicates_by_type"] == {"sentiment": 1}
