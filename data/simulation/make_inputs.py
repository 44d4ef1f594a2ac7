#!/usr/bin/env python3
"""Build the budget simulator's inputs (`real-align simulate --data ...`) from the shared data snapshot.

Stdlib only and deterministic: the same input files always give byte-identical output (gzip with mtime 0).

    python data/simulation/make_inputs.py --shared ../shared/data

Writes (paths relative to the repository root):
  data/simulation/alpaca_eval_500x8.jsonl.gz      format 1: 500 instructions, up to 8 judged responses
  data/simulation/hh_rlhf_harmless_test.jsonl.gz  format 2: HH-RLHF harmless-base test (pairwise)

Sources and licences: see data/simulation/NOTICE.md.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = REPO_ROOT / "data" / "simulation"
ALPACA_OUT = OUT_DIR / "alpaca_eval_500x8.jsonl.gz"
HH_OUT = OUT_DIR / "hh_rlhf_harmless_test.jsonl.gz"

# The models whose outputs GPT-4 judged against text_davinci_003 (alpaca_eval_gpt4/annotations.json), by
# the folder that holds the annotations. The judged text and its generator come from the annotation itself:
# under falcon-7b-instruct/ the judged outputs are falcon-40b-instruct's (generator_2 says so).
JUDGED_FOLDERS = [
    "alpaca-7b",
    "claude-2",
    "falcon-7b-instruct",
    "gpt35_turbo_instruct",
    "gpt4",
    "llama-2-70b-chat-hf",
    "llama-2-7b-chat-hf",
    "tulu-2-dpo-7b",
]
REFERENCE = "text_davinci_003"
ASSISTANT = "\n\nAssistant:"


def judge_score(preference: Any) -> float | None:
    """A response's score against the reference: 1 won, 0 lost, 0.5 a draw; None for no usable judgement.

    AlpacaEval encodes 2 = the judged model won, 1 = the reference won, 1.5 or 0 = a draw (0 for backward
    compatibility), so a preference p in [1, 2] scores p - 1.
    """
    if preference is None or isinstance(preference, bool):
        return None
    p = float(preference)
    if p == 0.0:
        return 0.5
    if 1.0 <= p <= 2.0:
        return p - 1.0
    return None


def alpaca_records(shared: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Format-1 records in the order of results/gpt4/model_outputs.json, and counts of what was dropped."""
    results = shared / "alpaca_eval" / "results"
    order = [row["instruction"] for row in json.loads((results / "gpt4" / "model_outputs.json").read_text())]
    judged: dict[str, dict[str, dict[str, Any]]] = {}
    for folder in JUDGED_FOLDERS:
        rows = json.loads((results / folder / "alpaca_eval_gpt4" / "annotations.json").read_text())
        judged[folder] = {}
        for row in rows:
            if row["generator_1"] != REFERENCE:
                raise SystemExit(f"{folder}: a judgement against {row['generator_1']}, not {REFERENCE}")
            judged[folder].setdefault(row["instruction"], row)
    dropped = {"no_judgement": 0, "unusable_preference": 0, "empty_output": 0, "fewer_than_2": 0}
    records: list[dict[str, Any]] = []
    for index, instruction in enumerate(order):
        responses: list[dict[str, Any]] = []
        for folder in JUDGED_FOLDERS:
            row = judged[folder].get(instruction)
            if row is None:
                dropped["no_judgement"] += 1
                continue
            score = judge_score(row["preference"])
            text = row["output_2"] or ""
            if score is None:
                dropped["unusable_preference"] += 1
            elif not text.strip():
                dropped["empty_output"] += 1
            else:
                generator = row["generator_2"]
                responses.append({"external_id": generator, "text": text, "model": generator, "score": score})
        if len(responses) < 2:
            dropped["fewer_than_2"] += 1
            continue
        records.append(
            {
                "external_id": f"alpaca_eval-{index:04d}",
                "prompt": instruction,
                "responses": responses,
                "metadata": {"source": "tatsu-lab/alpaca_eval", "judge": "alpaca_eval_gpt4"},
            }
        )
    return records, dropped


def split_dialogue(dialogue: str) -> tuple[str, str]:
    """(everything before the last assistant turn, that turn's text)."""
    at = dialogue.rfind(ASSISTANT)
    if at < 0:
        return dialogue, ""
    return dialogue[:at], dialogue[at + len(ASSISTANT) :].strip()


def hh_records(shared: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Format-2 records: one per source line whose two dialogues share all but the last turn."""
    path = shared / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
    dropped = {"different_prefix": 0, "empty_response": 0, "same_response": 0}
    records: list[dict[str, Any]] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            row = json.loads(line)
            prompt, chosen = split_dialogue(row["chosen"])
            other_prompt, rejected = split_dialogue(row["rejected"])
            if prompt != other_prompt:
                dropped["different_prefix"] += 1
            elif not chosen or not rejected:
                dropped["empty_response"] += 1
            elif chosen == rejected:
                dropped["same_response"] += 1
            else:
                records.append(
                    {
                        "external_id": f"hh-harmless-test-{number:04d}",
                        "prompt": prompt.strip(),
                        "chosen": chosen,
                        "rejected": rejected,
                    }
                )
    return records, dropped


def write_jsonl_gz(path: Path, records: list[dict[str, Any]]) -> None:
    """JSON Lines, gzip-compressed with no name and mtime 0 so the bytes depend on the records only."""
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as handle:
        handle.write(body)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", default="../shared/data", help="the shared data folder")
    args = parser.parse_args()
    shared = Path(args.shared)
    alpaca, alpaca_dropped = alpaca_records(shared)
    hh, hh_dropped = hh_records(shared)
    write_jsonl_gz(ALPACA_OUT, alpaca)
    write_jsonl_gz(HH_OUT, hh)
    responses = sum(len(r["responses"]) for r in alpaca)
    for path, what, dropped in (
        (ALPACA_OUT, f"{len(alpaca)} prompts, {responses} responses", alpaca_dropped),
        (HH_OUT, f"{len(hh)} prompts, 2 responses each", hh_dropped),
    ):
        size = path.stat().st_size
        print(f"{path.relative_to(REPO_ROOT)}: {what}, {size} bytes; dropped {dropped}")  # noqa: T201


if __name__ == "__main__":
    main()
