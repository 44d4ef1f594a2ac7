"""Make tests/data/hh_rlhf_harmless_200.jsonl from Anthropic HH-RLHF harmless-base test (MIT licence).

    python tests/data/make_hh_slice.py [--source ../shared/data/hh-rlhf/harmless-base/test.jsonl.gz]

Each record's prompt is the dialogue before the last "\\n\\nAssistant:" turn (as chat messages) and its two
responses are the last assistant turns of `chosen` and `rejected`. The first 200 records (in file order)
whose chosen and rejected share that prefix, whose two responses are non-empty, different and at most 400
characters each, are kept, so the test embeds quickly. Red-team content: tests only, never the demo.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

MARK = "\n\nAssistant:"
TURN = re.compile(r"\n\n(Human|Assistant): ")


def messages(prefix: str) -> list[dict[str, str]]:
    parts = TURN.split(prefix)
    return [
        {"role": "user" if role == "Human" else "assistant", "content": text.strip()}
        for role, text in zip(parts[1::2], parts[2::2], strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", default="../shared/data/hh-rlhf/harmless-base/test.jsonl.gz")
    parser.add_argument("--out", default=str(Path(__file__).with_name("hh_rlhf_harmless_200.jsonl")))
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    kept = []
    with gzip.open(args.source, "rt", encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            record = json.loads(line)
            chosen, rejected = record["chosen"], record["rejected"]
            cut_c, cut_r = chosen.rfind(MARK), rejected.rfind(MARK)
            if cut_c < 0 or chosen[:cut_c] != rejected[:cut_r]:
                continue
            a, b = chosen[cut_c + len(MARK) :].strip(), rejected[cut_r + len(MARK) :].strip()
            if not a or not b or a == b or len(a) > 400 or len(b) > 400:
                continue
            kept.append(
                {
                    "external_id": f"hh-harmless-test-{index:04d}",
                    "prompt": messages(chosen[:cut_c]),
                    "responses": [
                        {"text": a, "external_id": "chosen"},
                        {"text": b, "external_id": "rejected"},
                    ],
                    "metadata": {"source": "anthropics/hh-rlhf harmless-base/test", "line": index},
                }
            )
            if len(kept) == args.count:
                break
    with open(args.out, "w", encoding="utf-8") as out:
        for item in kept:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
