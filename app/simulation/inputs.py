"""The simulator's input files: two JSON Lines formats, validated line by line (pure Python, no numpy).

Format 1, ``responses`` (several scored responses per prompt; AlpacaEval-style)::

    {"external_id": str, "prompt": str,
     "responses": [{"external_id": str, "text": str, "model": str?, "score": number}, ...],
     "metadata": any?}

At least two responses; a higher ``score`` is preferred and equal scores are a tie (AlpacaEval's judge
scores each response 1 / 0.5 / 0 against one reference answer, so two responses compare by their scores).

Format 2, ``pairwise`` (one chosen and one rejected response per prompt; HH-RLHF, the paper's
dataset-level mode)::

    {"prompt": str, "chosen": str, "rejected": str, "external_id": str?, "metadata": any?}

``chosen`` is preferred. Without ``external_id`` a record is named ``line-N``.

One file holds one format. Blank lines are skipped. A file ending in ``.gz`` (or starting with the gzip
magic bytes) is decompressed. Anything else is refused with an ``InputError`` that names the file and line.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Format = Literal["responses", "pairwise"]

_GZIP_MAGIC = b"\x1f\x8b"
_RECORD_KEYS = {"responses": {"external_id", "prompt", "responses", "metadata"}}
_RESPONSE_KEYS = {"external_id", "text", "model", "score"}
_PAIRWISE_KEYS = {"external_id", "prompt", "chosen", "rejected", "metadata"}


class InputError(ValueError):
    """An input file that is not one of the two formats; the message names the file and the line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@dataclass(frozen=True)
class Response:
    external_id: str
    text: str
    score: float
    model: str | None = None


@dataclass(frozen=True)
class Prompt:
    """One prompt and its candidate responses, with the line it came from."""

    external_id: str
    text: str
    responses: tuple[Response, ...]
    line: int


@dataclass(frozen=True)
class SimulationInput:
    """A validated input file: its format and its prompts in file order."""

    format: Format
    prompts: tuple[Prompt, ...]

    @property
    def max_responses(self) -> int:
        """The most responses any prompt has."""
        return max(len(p.responses) for p in self.prompts)

    def texts(self) -> list[str]:
        """Every response text, prompt by prompt (duplicates kept)."""
        return [r.text for p in self.prompts for r in p.responses]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text(record: dict[str, Any], key: str, *, empty_ok: bool = False) -> str:
    """A required string field, or a ValueError saying what is wrong with it."""
    if key not in record:
        raise ValueError(f"missing field {key!r}")
    value = record[key]
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, got {_type_name(value)}")
    if not empty_ok and not value.strip():
        raise ValueError(f"field {key!r} is empty")
    return value


def _optional_text(record: dict[str, Any], key: str) -> str | None:
    """An optional string field: absent, null and "" are None."""
    if record.get(key) is None:
        return None
    return _text(record, key, empty_ok=True) or None


def _unknown(keys: set[str], allowed: set[str], where: str) -> None:
    extra = sorted(keys - allowed)
    if extra:
        raise ValueError(f"unknown field{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}{where}")


def _score(response: dict[str, Any], where: str) -> float:
    if "score" not in response:
        raise ValueError(f"missing field 'score'{where}")
    value = response["score"]
    # bool is an int to Python, but true/false is no score.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field 'score'{where} must be a number, got {_type_name(value)}")
    if not math.isfinite(value):
        raise ValueError(f"field 'score'{where} must be finite, got {value}")
    return float(value)


def _responses_record(record: dict[str, Any], line: int) -> Prompt:
    _unknown(set(record), _RECORD_KEYS["responses"], "")
    external_id = _text(record, "external_id")
    prompt = _text(record, "prompt")
    responses = record.get("responses")
    if not isinstance(responses, list):
        raise ValueError(f"field 'responses' must be a list, got {_type_name(responses)}")
    if len(responses) < 2:
        raise ValueError(f"a prompt needs at least 2 responses, got {len(responses)}")
    parsed: list[Response] = []
    seen: set[str] = set()
    for n, response in enumerate(responses):
        where = f" in responses[{n}]"
        if not isinstance(response, dict):
            raise ValueError(f"responses[{n}] must be an object, got {_type_name(response)}")
        _unknown(set(response), _RESPONSE_KEYS, where)
        try:
            response_id = _text(response, "external_id")
            text = _text(response, "text")
            model = _optional_text(response, "model")
        except ValueError as exc:
            raise ValueError(f"{exc}{where}") from None
        if response_id in seen:
            raise ValueError(f"duplicate response external_id {response_id!r}{where}")
        seen.add(response_id)
        parsed.append(Response(response_id, text, _score(response, where), model))
    return Prompt(external_id, prompt, tuple(parsed), line)


def _pairwise_record(record: dict[str, Any], line: int) -> Prompt:
    _unknown(set(record), _PAIRWISE_KEYS, "")
    prompt = _text(record, "prompt", empty_ok=True)
    chosen = _text(record, "chosen")
    rejected = _text(record, "rejected")
    external_id = _optional_text(record, "external_id") or f"line-{line}"
    responses = (Response("chosen", chosen, 1.0), Response("rejected", rejected, 0.0))
    return Prompt(external_id, prompt, responses, line)


def _format_of(record: dict[str, Any]) -> Format:
    if "responses" in record:
        return "responses"
    if "chosen" in record or "rejected" in record:
        return "pairwise"
    raise ValueError(
        "neither format: a record has 'responses' (format 1: scored responses) "
        "or 'chosen' and 'rejected' (format 2: pairwise)"
    )


def decompressed(raw: bytes, name: str, max_bytes: int | None = None) -> bytes:
    """The bytes of a file as given, gunzipped if they start with the gzip magic bytes; InputError for a
    broken gzip file or, with ``max_bytes``, one that unpacks to more than that."""
    if raw[:2] != _GZIP_MAGIC:
        if max_bytes is not None and len(raw) > max_bytes:
            raise InputError(name, 0, f"the file is over {max_bytes} bytes")
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            unpacked = stream.read(-1 if max_bytes is None else max_bytes + 1)
    except (OSError, EOFError) as exc:
        raise InputError(name, 0, f"not a readable gzip file: {exc}") from None
    if max_bytes is not None and len(unpacked) > max_bytes:
        raise InputError(name, 0, f"the file unpacks to over {max_bytes} bytes")
    return unpacked


def parse_lines(lines: list[bytes], name: str) -> SimulationInput:
    """Validate JSON Lines (one record a line) of one format; InputError naming the first bad line."""
    prompts: list[Prompt] = []
    file_format: Format | None = None
    first_line = 0
    ids: dict[str, int] = {}
    for number, raw in enumerate(lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(name, number, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(name, number, f"not JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(record, dict):
            raise InputError(name, number, f"a record must be a JSON object, got {_type_name(record)}")
        try:
            kind = _format_of(record)
            if file_format is None:
                file_format, first_line = kind, number
            elif kind != file_format:
                raise ValueError(
                    f"a {kind} record in a {file_format} file (line {first_line} set the format); "
                    "one file holds one format"
                )
            prompt = (
                _responses_record(record, number) if kind == "responses" else _pairwise_record(record, number)
            )
        except ValueError as exc:
            raise InputError(name, number, str(exc)) from None
        if prompt.external_id in ids:
            raise InputError(
                name,
                number,
                f"duplicate external_id {prompt.external_id!r} (first on line {ids[prompt.external_id]})",
            )
        ids[prompt.external_id] = number
        prompts.append(prompt)
    if file_format is None:
        raise InputError(name, 0, "no records (the file is empty)")
    return SimulationInput(file_format, tuple(prompts))


def parse_bytes(raw: bytes, name: str, max_bytes: int | None = None) -> SimulationInput:
    """Validate a whole file's bytes (JSON Lines, optionally gzip-compressed; see ``decompressed``)."""
    return parse_lines(decompressed(raw, name, max_bytes).splitlines(), name)


def load(path: str | Path) -> SimulationInput:
    """Read and validate a simulator input file (JSON Lines, optionally gzip-compressed)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), 0, f"cannot read: {exc.strerror or exc}") from None
    return parse_bytes(raw, str(path))
