"""One tokenizer pass, one length-sorted pass: the plain model's vectors and counts, in input order."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from app.config import DEFAULT_EMBEDDING_MODEL, get_settings
from app.embeddings import service
from app.embeddings.codec import from_bytes
from app.embeddings.embedder import Embedder, Tokenized, _token_batches, get_embedder
from app.embeddings.models import Embedding
from app.embeddings.tasks import embed_prompts
from app.pairs.models import Pair
from app.prompts.text import prompt_text_sha256
from tests.e2e.pipeline import load_items

pytestmark = pytest.mark.embedding

LONG = "The committee reviewed every clause of the agreement twice before it voted. " * 30


def real_texts() -> list[str]:
    """Real answers of mixed lengths (tests/data), a text over 256 tokens, and edge cases."""
    answers = [r if isinstance(r, str) else r["text"] for item in load_items()[:4] for r in item["responses"]]
    return [*answers, LONG, "  padded with spaces  \n", "ok", "Ünïcödé 🙂"]


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    embedder = get_embedder(DEFAULT_EMBEDDING_MODEL)
    assert isinstance(embedder, Embedder)
    return embedder


class TestTokenize:
    def test_counts_equal_a_direct_count_of_the_whole_text(self, minilm: Embedder) -> None:
        texts = real_texts()
        tokens = minilm.tokenize(texts)
        direct = minilm.model.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        assert tokens.token_counts == [len(x) for x in direct["input_ids"]]
        assert tokens.token_counts[texts.index(LONG)] > minilm.max_seq_length

    def test_inputs_equal_the_tokenizers_own_truncation(self, minilm: Embedder) -> None:
        texts = real_texts()
        cut = minilm.model.tokenizer(texts, truncation=True, max_length=minilm.max_seq_length)["input_ids"]
        assert minilm.tokenize(texts).ids == [list(x) for x in cut]

    def test_each_text_is_tokenized_once_and_only_overlong_ones_are_cut_again(
        self, minilm: Embedder, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        texts = real_texts()
        counts = minilm.model.tokenizer(texts, truncation=False, verbose=False)["input_ids"]
        over = [t for t, ids in zip(texts, counts, strict=True) if len(ids) > minilm.max_seq_length]
        assert over  # long texts are there to be cut
        seen: list[str] = []
        real = minilm._tokenizer()

        def counting(batch: list[str], **kwargs: Any) -> Any:
            seen.extend(batch)
            return real(batch, **kwargs)

        monkeypatch.setattr(minilm, "_tokenizer", lambda: counting)
        minilm.tokenize(texts)
        assert sorted(seen) == sorted([*texts, *over])

    def test_threads_give_the_same_result(self, minilm: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
        texts = real_texts() * 40  # enough for several slices
        one = minilm.tokenize(texts)
        monkeypatch.setattr(minilm, "tokenizer_threads", 3)
        assert minilm.tokenize(texts) == one


class TestEncode:
    def test_vectors_equal_sentence_transformers_encode_in_input_order(self, minilm: Embedder) -> None:
        texts = real_texts()
        reference = minilm.model.encode(texts, batch_size=32, convert_to_numpy=True)
        encoded = minilm.encode(texts)
        np.testing.assert_allclose(encoded.vectors, reference, atol=2e-6)
        # Shuffled input: the same vector follows each text wherever it stands.
        order = np.random.default_rng(7).permutation(len(texts))
        shuffled = minilm.encode([texts[i] for i in order])
        np.testing.assert_allclose(shuffled.vectors, encoded.vectors[order], atol=2e-6)
        assert shuffled.token_counts == [encoded.token_counts[i] for i in order]

    def test_overlapped_batches_give_the_same_vectors(
        self, minilm: Embedder, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        texts = real_texts()
        plain = minilm.encode(texts).vectors
        monkeypatch.setattr(minilm, "overlap", True)  # the accelerator path: next batch padded in a thread
        monkeypatch.setattr(minilm, "batch_size", 3)
        np.testing.assert_allclose(minilm.encode(texts).vectors, plain, atol=2e-6)

    def test_batches_stop_at_the_text_count_or_the_padded_token_budget(self) -> None:
        lengths = [3, 3, 4, 10, 10, 10, 40, 300, 300]
        batches = _token_batches(lengths, 4, 32)
        assert [list(b) for b in batches] == [[0, 1, 2], [3, 4, 5], [6], [7], [8]]
        for b in batches:  # each within both caps, or a single text over the budget
            assert len(b) <= 4
            assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 32
        # Any order: the padded width is the batch's longest text, not its last one.
        assert [list(b) for b in _token_batches([10, 2, 2, 2], 8, 24)] == [[0, 1], [2, 3]]
        assert [list(b) for b in _token_batches([1] * 10, 4, 1000)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        assert [list(b) for b in _token_batches(lengths, 4, 0)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
        assert _token_batches([], 4, 32) == []

    def test_token_budget_batches_give_the_same_vectors(
        self, minilm: Embedder, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        texts = real_texts()
        monkeypatch.setattr(minilm, "batch_tokens", 0)  # batches of batch_size texts, whatever their length
        plain = minilm.encode(texts).vectors
        monkeypatch.setattr(minilm, "batch_tokens", 300)  # long texts one at a time, short ones together
        np.testing.assert_allclose(minilm.encode(texts).vectors, plain, atol=2e-6)

    def test_length_order_is_shortest_first_and_stable(self) -> None:
        tokens = Tokenized([[1, 2, 3], [1], [4, 5, 6], [7, 8]], [3, 1, 3, 2])
        assert tokens.length_order() == [1, 3, 0, 2]
        assert tokens.take([2, 1]) == Tokenized([[4, 5, 6], [1]], [3, 1])


class TestServiceEncode:
    def test_rows_follow_their_hash_whatever_the_sorting(self, minilm: Embedder) -> None:
        texts = real_texts()
        by_hash = {hashlib.sha256(t.encode()).hexdigest(): t for t in texts}
        rows = [row for chunk in service.encode(DEFAULT_EMBEDDING_MODEL, by_hash, batch=4) for row in chunk]
        assert len(rows) == len(texts)
        direct = {h: minilm.encode([t]) for h, t in by_hash.items()}
        lengths = []
        for row in rows:
            alone = direct[str(row["text_sha256"])]
            vector = from_bytes(row["vector"], int(str(row["dim"])))  # type: ignore[arg-type]
            assert float(np.dot(vector, alone.vectors[0])) > 0.99999
            assert row["token_count"] == alone.token_counts[0]
            assert row["truncated"] == (alone.token_counts[0] > 256)
            lengths.append(min(int(str(row["token_count"])), 256))
        assert lengths == sorted(lengths)  # one pass, shortest first, across the chunks of 4


def test_answers_are_embedded_and_paired_before_prompt_texts(
    client: Any, db: Any, recorded_tasks: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = client.post("/v1/projects", json={"name": "answers first"}).json()
    items = [
        {"external_id": "p1", "prompt": "Name a colour.", "responses": ["Red.", "Blue is calm.", "Green"]},
        {"external_id": "p2", "prompt": "Name a fruit.", "responses": ["Apple.", "A ripe mango."]},
    ]
    client.post(f"/v1/projects/{project['id']}/prompts", json={"items": items})
    calls: list[tuple[set[str], int]] = []
    real = service.encode

    def watching(model: str, texts: dict[str, str], batch: int = service.ENCODE_BATCH) -> Any:
        with db.session() as session:
            pairs = session.scalar(select(func.count()).select_from(Pair))
        calls.append((set(texts), int(pairs or 0)))
        return real(model, texts, batch)

    monkeypatch.setattr(service, "encode", watching)
    embed_prompts([i for _, kwargs in recorded_tasks for i in kwargs["prompt_ids"]])
    answers = {hashlib.sha256(r.encode()).hexdigest() for item in items for r in item["responses"]}
    prompts = {prompt_text_sha256(item["prompt"]) for item in items}
    # The answers with no pair yet; the prompt texts after both prompts' pairs were committed.
    assert [texts for texts, _ in calls] == [answers, prompts]
    assert calls[0][1] == 0
    with db.session() as session:
        assert calls[1][1] == session.scalar(select(func.count()).select_from(Pair)) > 0
    with db.session() as session:
        stored = set(session.scalars(select(Embedding.text_sha256)))
    assert stored == answers | prompts


def test_the_embedding_cache_dir_defaults_to_a_folder_git_ignores() -> None:
    assert get_settings().embedding_cache_dir == Path("models")
    root = Path(__file__).resolve().parents[2]
    assert "/models/" in (root / ".gitignore").read_text().splitlines()
