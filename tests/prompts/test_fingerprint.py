"""Content fingerprints never change: a re-ingest compares them with the ones earlier versions stored."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from typing import Any

from app.db import ids
from app.prompts import service
from app.prompts.schemas import PromptItem


def reference(item: PromptItem) -> str:
    """The fingerprint as every version so far defined it."""
    prompt = item.prompt if isinstance(item.prompt, str) else [m.model_dump() for m in item.prompt]
    responses = [
        {"text": r, "external_id": None, "model": None}
        if isinstance(r, str)
        else {"text": r.text, "external_id": r.external_id, "model": r.model}
        for r in item.responses
    ]
    canonical = {"prompt": prompt, "responses": responses, "metadata": item.metadata}
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def test_pinned_values() -> None:
    """Values stored by the code before the fingerprint was written without json.dumps (c0896bb)."""
    plain = PromptItem.model_validate(
        {
            "external_id": "x",
            "prompt": "Question 1?",
            "responses": ["yes", {"text": "no", "external_id": "r2", "model": "m"}],
        }
    )
    chat = PromptItem.model_validate(
        {
            "external_id": "y",
            "prompt": [{"role": "user", "content": 'Hé "quoted"\n\ttab \\ 😀'}],
            "responses": ["a\u2028b", "c"],
            "metadata": {"z": [1, 2.5, None, True], "a": {"y": "é", "b": 1e-07}},
        }
    )
    assert service.content_sha256(plain) == "a6a7e13285f29d4b51f4d7b9c1b8fb90c622054df3db21e40be65ea6653a2df9"
    assert service.content_sha256(chat) == "07b8e239f18e32ef90486f2a76d09de55d44582ef98fa86166041c85cedb08eb"
    assert service.incoming(0, chat).fingerprint == service.content_sha256(chat)


def test_same_as_the_definition_on_varied_items() -> None:
    rnd = random.Random(15)
    alphabet = ["a", "é", "\\", '"', "\n", "\t", "ü", "😀", "/", "\u2028", "\x7f", "\x01", "<", " "]

    def text() -> str:
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 8))) + "x"

    def metadata(depth: int = 0) -> dict[str, Any]:
        values: list[Any] = [text(), rnd.randint(-5, 10**12), rnd.random() * 1e6, 1e-7, True, None, [1, "a"]]
        out: dict[str, Any] = {}
        for _ in range(rnd.randint(0, 4)):
            out[text()] = metadata(depth + 1) if depth < 2 and rnd.random() < 0.3 else rnd.choice(values)
        return out

    for n in range(500):
        prompt: Any = text()
        if rnd.random() < 0.4:
            prompt = [{"role": rnd.choice(["user", "assistant"]), "content": text()} for _ in range(2)]
        responses: list[Any] = []
        for _ in range(rnd.randint(2, 5)):
            if rnd.random() < 0.5:
                responses.append(text())
            else:
                extra = {key: text() for key in ("external_id", "model") if rnd.random() < 0.5}
                responses.append({"text": text(), **extra})
        raw: dict[str, Any] = {"external_id": f"e{n}", "prompt": prompt, "responses": responses}
        if rnd.random() < 0.8:
            raw["metadata"] = metadata()
        item = PromptItem.model_validate(raw)
        assert service.content_sha256(item) == reference(item), raw


def test_uuid7_texts_in_bulk_keep_the_order_and_the_format() -> None:
    before = [ids.uuid7() for _ in range(3)]
    texts = ids.uuid7_texts(9000)  # more than the 12-bit counter: borrows milliseconds
    after = ids.uuid7()
    made = [uuid.UUID(t) for t in texts]
    assert [str(u) for u in made] == texts
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in made)
    every = [*before, *made, after]
    assert every == sorted(every)
    assert len(set(every)) == len(every)
    assert ids.uuid7_texts(0) == []
