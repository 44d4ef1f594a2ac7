"""Real short texts for neighbour tests and the benchmark: the AlpacaEval responses, split into sentences."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "tests/data/alpaca_eval_20x4.jsonl", ROOT / "data/demo/alpaca_eval_demo.jsonl")
# Sentence ends, or line breaks (lists and headings in the responses are one item a line).
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def real_sentences(min_chars: int = 20) -> list[str]:
    """Distinct sentences of at least min_chars characters, in file order (about 2,700)."""
    seen: dict[str, None] = {}
    for source in SOURCES:
        for line in source.read_text("utf-8").splitlines():
            for response in json.loads(line)["responses"]:
                text = response["text"] if isinstance(response, dict) else response
                for sentence in _SPLIT.split(text):
                    sentence = sentence.strip()
                    if len(sentence) >= min_chars:
                        seen.setdefault(sentence)
    return list(seen)
