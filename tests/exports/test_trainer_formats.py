"""Exported files load with Hugging Face `datasets` and train with TRL's DPOTrainer, in every format.

TRL (with `datasets`) is in the `test` extra: these tests use its own preference-format utilities
(`is_conversational`, `maybe_apply_chat_template`) and run one DPO step on a tiny local model, so "loadable
by the trainer" is checked by the trainer itself rather than by a copy of its rules.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.exports.rows import columns
from app.prompts.models import Prompt, Response
from tests.exports.helpers import at, data_path, label, run_export
from tests.factories import make_pairs, make_project

pytestmark = pytest.mark.usefixtures("recorded_tasks")

TURNS = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
COMBOS = list(itertools.product(("jsonl", "parquet"), ("standard", "conversational"), ("none", "gzip")))


def seed(db: Any) -> Any:
    """Six pairs with a winner; the first has one label of three (agreement null, exported with
    include_partial) and a multi-turn prompt."""
    with db.session() as s:
        project = make_project(s, annotations_per_pair=3)
        pairs = make_pairs(s, project, 6)
        for n, pair in enumerate(pairs):
            first, other = ("a", "b") if n % 2 else ("b", "a")
            label(s, pair, "ann1", first, at(n))
            if n:  # two more labels: unanimous, or 2 to 1
                label(s, pair, "ann2", first, at(n + 0.25))
                label(s, pair, "ann3", other if n % 3 else first, at(n + 0.5))
        first = s.scalars(select(Prompt).where(Prompt.id == pairs[0].prompt_id)).one()
        first.prompt = TURNS
        return project.id


def load(path: Path, fmt: str, cache: Path) -> Any:
    from datasets import load_dataset

    builder = "json" if fmt == "jsonl" else "parquet"
    return load_dataset(builder, data_files=str(path), split="train", cache_dir=str(cache))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    from tests.embeddings.tiny_causal_lm import build_tiny_causal_lm

    folder = build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))
    tok = AutoTokenizer.from_pretrained(folder)
    tok.pad_token = tok.eos_token
    tok.chat_template = CHAT_TEMPLATE
    tok.model_folder = folder
    return tok


def test_every_format_loads_with_datasets_and_passes_trl_format_checks(
    db: Any, tmp_path: Path, tokenizer: Any
) -> None:
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    pid = seed(db)
    loaded: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for fmt, style, compression in COMBOS:
        run = run_export(
            db,
            pid,
            format=fmt,
            style=style,
            compression=compression,
            snapshot_at=at(60),
            include_partial=True,
        )
        assert run.rows == 6, run.error
        path = data_path(run)
        expected_name = {"jsonl": "data.jsonl", "parquet": "data.parquet"}[fmt]
        if fmt == "jsonl" and compression == "gzip":
            expected_name += ".gz"
        assert path.name == expected_name
        dataset = load(path, fmt, tmp_path / "hf-cache")
        assert dataset.num_rows == run.rows
        assert dataset.column_names == columns()
        examples = dataset.to_list()
        loaded[(fmt, style, compression)] = examples
        for example in examples:
            assert is_conversational(example) is (style == "conversational")
            templated = maybe_apply_chat_template(example, tokenizer)
            assert all(isinstance(templated[k], str) for k in ("prompt", "chosen", "rejected"))
            if style == "conversational":
                assert example["chosen"][0]["role"] == example["rejected"][0]["role"] == "assistant"
                assert templated["prompt"].endswith("<|assistant|>")
            assert isinstance(example["num_labels"], int)
            assert isinstance(example["reviewed"], bool)
        multi_turn = next(e for e in examples if e["prompt_external_id"] == "factory-0")
        assert multi_turn["agreement"] is None  # null, not NaN, in every format
        # One of the three labels wanted: no disagreement seen, a third of the evidence.
        assert (multi_turn["label_smoothing"], multi_turn["weight"]) == (0.0, 0.333333)
        assert multi_turn["completed"] is False
        if style == "conversational":
            assert multi_turn["prompt"] == TURNS  # turns kept as turns
        else:
            assert multi_turn["prompt"].startswith("System: Answer briefly.\n\nUser: What is")
    # The same rows whatever the container.
    for style in ("standard", "conversational"):
        reference = loaded[("jsonl", style, "none")]
        for fmt, compression in itertools.product(("jsonl", "parquet"), ("none", "gzip")):
            assert loaded[(fmt, style, compression)] == reference, (fmt, style, compression)


def test_trl_dpo_trainer_trains_on_the_exports(db: Any, tmp_path: Path, tokenizer: Any) -> None:
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    pid = seed(db)
    for fmt, style, compression in (("jsonl", "standard", "gzip"), ("parquet", "conversational", "none")):
        run = run_export(db, pid, format=fmt, style=style, compression=compression, include_partial=True)
        dataset = load(data_path(run), fmt, tmp_path / "hf-cache")
        trainer = DPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(tokenizer.model_folder),
            args=DPOConfig(
                output_dir=str(tmp_path / f"dpo-{style}"),
                max_steps=1,
                per_device_train_batch_size=2,
                max_length=96,
                report_to=[],
                use_cpu=True,
                save_strategy="no",
                disable_tqdm=True,
            ),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
        result = trainer.train()
        assert result.global_step == 1
        assert result.training_loss == pytest.approx(0.6931, abs=0.05)


def documented_features(style: str) -> Any:
    """The `features=` given in docs/exports.md for loading JSONL exports."""
    from datasets import Features, Value

    text: Any = Value("string")
    if style == "conversational":
        text = [{"role": Value("string"), "content": Value("string")}]
    string, number = Value("string"), Value("float64")
    return Features(
        {
            "prompt": text,
            "chosen": text,
            "rejected": text,
            "pair_id": string,
            "prompt_external_id": string,
            "chosen_response_external_id": string,
            "rejected_response_external_id": string,
            "chosen_model": string,
            "rejected_model": string,
            "similarity": number,
            "strategy": string,
            "num_labels": Value("int64"),
            "completed": Value("bool"),
            "agreement": number,
            "ds_posterior": number,
            "reviewed": Value("bool"),
            "label_smoothing": number,
            "weight": number,
            "completed_at": string,
        }
    )


@pytest.mark.parametrize("style", ["standard", "conversational"])
def test_jsonl_whose_first_rows_are_null_loads_with_the_documented_features(
    db: Any, tmp_path: Path, style: str
) -> None:
    """`datasets` infers JSON types per chunk: a column null in the whole first chunk (single-label pairs,
    responses without external ids) and set later fails to load unless `features=` says the types."""
    from datasets import Features, load_dataset

    from app.exports.writers import parquet_schema

    assert Features.from_arrow_schema(parquet_schema(style)) == documented_features(style)
    with db.session() as s:
        project = make_project(s, annotations_per_pair=2)
        pairs = make_pairs(s, project, 40)
        for n, pair in enumerate(pairs):
            label(s, pair, "ann1", "a", at(n))
            if n >= 30:  # the last pairs get a second label (agreement set) and external ids
                label(s, pair, "ann2", "a", at(n + 0.5))
                for response in s.scalars(select(Response).where(Response.prompt_id == pair.prompt_id)):
                    response.external_id = f"resp-{response.id}"
        pid = project.id
    run = run_export(db, pid, style=style, snapshot_at=at(60), include_partial=True)
    dataset = load_dataset(
        "json",
        data_files=str(data_path(run)),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
        chunksize=2048,  # a small file behaves like a large one: many chunks
        features=documented_features(style),
    )
    rows = dataset.to_list()
    assert len(rows) == 40
    assert [r["agreement"] for r in rows[:30]] == [None] * 30
    assert [r["agreement"] for r in rows[30:]] == [1.0] * 10
    assert all(r["chosen_response_external_id"].startswith("resp-") for r in rows[30:])
