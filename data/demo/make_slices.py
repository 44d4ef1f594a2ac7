#!/usr/bin/env python3
"""Build the AlpacaEval demo data and test fixture from the shared data snapshot.

Stdlib only and deterministic: the same input files always give byte-identical output.

    python data/demo/make_slices.py --shared ../shared/data

Writes (paths relative to the repository root):
  data/demo/alpaca_eval_demo.jsonl   40 instructions x 6 responses, full text
  tests/data/alpaca_eval_20x4.jsonl  20 instructions x 4 responses, each cut to <= 600 chars

Source: github.com/tatsu-lab/alpaca_eval @ cd543a149df89434d8a54582c0151c0b945c3d20,
results/<model>/model_outputs.json (data licence CC BY-NC 4.0). See the NOTICE.md files.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_OUT = REPO_ROOT / "data" / "demo" / "alpaca_eval_demo.jsonl"
TEST_OUT = REPO_ROOT / "tests" / "data" / "alpaca_eval_20x4.jsonl"

DEMO_MODELS = [
    "gpt4",
    "claude-2",
    "llama-2-70b-chat-hf",
    "Mistral-7B-Instruct-v0.2",
    "alpaca-7b",
    "falcon-7b-instruct",
]
TEST_MODELS = ["gpt4", "claude-2", "alpaca-7b", "falcon-7b-instruct"]

FIRST_N = 500  # only the first 500 instructions of results/gpt4/model_outputs.json
DEMO_COUNT = 40
TEST_COUNT = 20
MAX_OUTPUT_CHARS = 2500  # demo: skip an instruction if any chosen output is longer
MAX_INSTRUCTION_CHARS = 1000  # skip very long instructions (both files)
TEST_CUT_CHARS = 600  # fixture: cut each response to at most this many chars

# Coarse word filter for offensive/unsafe topics, applied to the instruction and to every
# chosen output. Over-inclusive on purpose: a false positive only skips a harmless prompt.
UNSAFE_RE = re.compile(
    r"\b("
    r"kill\w*|murder\w*|suicid\w*|self-harm|weapon\w*|gun|guns|firearm\w*|bomb\w*|explosive\w*|"
    r"drug|drugs|cocaine|heroin|meth|marijuana|cannabis|weed|overdose|poison\w*|"
    r"sex|sexual\w*|porn\w*|nude|naked|erotic\w*|rape\w*|abuse\w*|"
    r"racis\w*|racial|slur\w*|nazi\w*|hitler|terror\w*|genocide|slave\w*|"
    r"hack\w*|steal\w*|theft|illegal\w*|crime\w*|criminal\w*|"
    r"violen\w*|blood\w*|torture\w*|war|wars|religio\w*|politic\w*|abortion|"
    r"fuck\w*|shit\w*|damn\w*|bitch\w*|ass|asshole|nigg\w*|fag\w*|retard\w*|"
    r"insult\w*|offensive|curse|swear\w*"
    r")\b",
    re.IGNORECASE,
)

# Instructions dropped after reading them (by index in the gpt4 file); the word filter
# alone did not catch them.  Kept explicit so the selection stays reproducible.
MANUAL_SKIP: set[int] = {
    219,  # song lyrics about a religious figure (religious content)
    409,  # asks for a copyrighted song's lyrics; outputs quote them
}


def load_outputs(shared: Path, model: str) -> dict[str, dict]:
    path = shared / "alpaca_eval" / "results" / model / "model_outputs.json"
    with path.open(encoding="utf-8") as fh:
        rows = json.load(fh)
    by_instr: dict[str, dict] = {}
    for row in rows:
        by_instr.setdefault(row["instruction"], row)  # keep the first if duplicated
    return by_instr


def cut_at_word(text: str, limit: int) -> str:
    """Cut text to at most `limit` chars at a word boundary (whitespace), trimmed."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    # last whitespace at or before `limit`
    m = None
    for m in re.finditer(r"\s", head):
        pass
    cut = head[: m.start()] if m and m.start() > 0 else text[:limit]
    return cut.rstrip()


def is_unsafe(text: str) -> bool:
    return UNSAFE_RE.search(text) is not None


def candidates(shared: Path, models: list[str]):
    """Yield (index, gpt4_row, {model: output}) for usable instructions, in gpt4 order."""
    gpt4_rows = json.loads(
        (shared / "alpaca_eval" / "results" / "gpt4" / "model_outputs.json").read_text(encoding="utf-8")
    )[:FIRST_N]
    tables = {m: load_outputs(shared, m) for m in models}
    for idx, row in enumerate(gpt4_rows):
        if idx in MANUAL_SKIP:
            continue
        instr = row["instruction"]
        if not instr.strip() or len(instr) > MAX_INSTRUCTION_CHARS or is_unsafe(instr):
            continue
        outs = {}
        for m in models:
            r = tables[m].get(instr)
            text = (r or {}).get("output") or ""
            if not text.strip():
                break
            outs[m] = text
        else:
            if any(is_unsafe(t) for t in outs.values()):
                continue
            yield idx, row, outs


def make_item(idx: int, row: dict, outs: dict[str, str]) -> dict:
    return {
        "external_id": f"alpaca_eval-{idx:04d}",
        "prompt": row["instruction"],
        "responses": [{"text": t, "model": m, "external_id": m} for m, t in outs.items()],
        "metadata": {"source": "tatsu-lab/alpaca_eval", "dataset": row["dataset"]},
    }


def spread(items: list[dict], n: int) -> list[dict]:
    """Pick n items evenly spaced over `items` (order kept); fail if there are too few."""
    if len(items) < n:
        raise SystemExit(f"only {len(items)} instructions qualified, need {n}")
    return [items[(i * len(items)) // n] for i in range(n)]


def write_jsonl(path: Path, items: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for item in items:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared/data", help="shared data dir (default: ../shared/data)")
    args = ap.parse_args()
    shared = Path(args.shared)

    # Demo: all qualifying instructions, then DEMO_COUNT of them evenly spaced over the
    # 500 so the demo mixes the source datasets (helpful_base, koala, oasst, selfinstruct).
    demo_pool = [
        make_item(idx, row, outs)
        for idx, row, outs in candidates(shared, DEMO_MODELS)
        if all(len(t) <= MAX_OUTPUT_CHARS for t in outs.values())
    ]
    demo = spread(demo_pool, DEMO_COUNT)
    demo_ids = {it["external_id"] for it in demo}

    # Test fixture: same, over instructions not used by the demo (demo ones only as a fallback).
    test_pool: list[dict] = []
    spare: list[dict] = []
    for idx, row, outs in candidates(shared, TEST_MODELS):
        cut = {m: cut_at_word(t, TEST_CUT_CHARS) for m, t in outs.items()}
        if any(not t for t in cut.values()) or len(set(cut.values())) != len(cut):
            continue  # need 4 distinct non-empty texts per prompt
        item = make_item(idx, row, cut)
        (spare if item["external_id"] in demo_ids else test_pool).append(item)
    if len(test_pool) < TEST_COUNT:
        test_pool = sorted(test_pool + spare[: TEST_COUNT - len(test_pool)], key=lambda it: it["external_id"])
    test = spread(test_pool, TEST_COUNT)

    write_jsonl(DEMO_OUT, demo)
    write_jsonl(TEST_OUT, test)
    for path, items in ((DEMO_OUT, demo), (TEST_OUT, test)):
        n_resp = sum(len(it["responses"]) for it in items)
        print(f"{path.relative_to(REPO_ROOT)}: {len(items)} prompts, {n_resp} responses, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
