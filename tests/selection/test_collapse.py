"""What the prompt view says was collapsed is what the selection collapsed (one computation, no database)."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.embeddings.codec import from_bytes, to_bytes
from app.embeddings.models import Embedding
from app.prompts.models import Response
from app.selection.service import collapsed_responses, distinct_candidates
from app.selection.strategies import select_batch


def responses_and_vectors(
    texts: list[str], vectors: list[np.ndarray]
) -> tuple[list[Response], dict[str, Embedding]]:
    responses, stored = [], {}
    for position, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        sha = hashlib.sha256(text.encode()).hexdigest()
        responses.append(Response(id=uuid.uuid4(), position=position, text=text, text_sha256=sha))
        stored[sha] = Embedding(model="m", text_sha256=sha, dim=len(vector), vector=to_bytes(vector))
    return responses, stored


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["", " ", "alpha", "beta", "gamma", "delta", "eps"]), min_size=2, max_size=7
    ),
    seed=st.integers(0, 2**32 - 1),
    threshold=st.sampled_from([None, 0.5, 0.8, 0.9, 0.98]),
)
def test_the_view_lists_exactly_what_select_batch_left_out(
    words: list[str], seed: int, threshold: float | None
) -> None:
    rng = np.random.default_rng(seed)
    base = {w: rng.normal(size=4) for w in set(words)}
    # Words repeat (exact duplicates, which share one stored vector, the last written); the noise per
    # position makes some distinct texts near-duplicates at the higher thresholds.
    vectors = [base[w] + rng.normal(scale=0.2, size=4) for w in words]
    responses, stored = responses_and_vectors(words, vectors)
    collapsed = collapsed_responses(responses, stored, threshold)
    candidates = distinct_candidates(responses)
    if len(candidates) >= 2:
        matrix = np.stack([from_bytes(stored[r.text_sha256].vector, 4) for r in candidates])[None]
        kept = select_batch(
            matrix, np.ones((1, len(candidates)), bool), "dissimilar", 1, [0], threshold
        ).kept[0]
        near = {candidates[j].id for j in range(len(candidates)) if not kept[j]}
    else:
        near = set()
    assert {c.response.id for c in collapsed if c.reason == "near_duplicate"} == near
    assert {c.response.id for c in collapsed if c.reason != "near_duplicate"} == {
        r.id for r in responses if r not in candidates
    }
    for c in collapsed:
        assert c.duplicate_of is None or c.duplicate_of.position < c.response.position


def test_a_similarity_just_under_the_threshold_is_not_collapsed() -> None:
    """0.9799996 rounds to 0.98 in the similarity matrix shown, but the selection compares the exact value."""
    c = 0.9799996
    vectors = [np.array([1.0, 0.0, 0.0]), np.array([c, np.sqrt(1 - c * c), 0.0]), np.array([0.0, 0.0, 1.0])]
    responses, stored = responses_and_vectors(["one", "two", "three"], vectors)
    assert collapsed_responses(responses, stored, 0.98) == []
    assert [c.reason for c in collapsed_responses(responses, stored, 0.97)] == ["near_duplicate"]
