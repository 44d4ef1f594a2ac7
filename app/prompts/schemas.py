"""Ingest request and prompt read bodies."""

from __future__ import annotations

import json
import json.encoder
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator

from app.config import get_settings
from app.labels.schemas import OutcomeRead
from app.pairs.schemas import RedundantWith
from app.prompts.models import PromptStatus
from app.schemas import Input, NoNulStr, check_json

HARD_MAX_ITEMS = 10_000
HARD_MAX_RESPONSES = 256


def _key_count(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_key_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(_key_count(v) for v in value)
    return 0


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
# json.dumps(value, ensure_ascii=False, separators=(",", ":")) without building a JSONEncoder per call
_compact: Any = (
    _c_make_encoder(None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    if _c_make_encoder is not None
    else None
)


def _compact_json(value: Any) -> str:
    if _compact is None:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "".join(_compact(value, 0))


def _storable_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """Free-form JSON stored with the prompt: storable text only, within REAL_MAX_METADATA_BYTES and
    REAL_MAX_METADATA_KEYS (nested keys count)."""
    check_json(value)
    settings = get_settings()
    keys = _key_count(value)
    if keys > settings.max_metadata_keys:
        raise ValueError(f"{keys} keys; at most {settings.max_metadata_keys} keys (nested ones count)")
    size = len(_compact_json(value).encode())
    if size > settings.max_metadata_bytes:
        raise ValueError(f"{size} bytes as JSON; at most {settings.max_metadata_bytes} bytes")
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_storable_metadata)]


class Message(Input):
    role: NoNulStr = Field(min_length=1, max_length=32)
    content: NoNulStr


class ResponseIn(Input):
    text: NoNulStr
    external_id: NoNulStr | None = Field(default=None, min_length=1, max_length=512)
    model: NoNulStr | None = Field(default=None, min_length=1, max_length=256)


class PromptItem(Input):
    external_id: NoNulStr = Field(min_length=1, max_length=512)
    prompt: NoNulStr | list[Message] = Field(description="A string, or chat messages [{role, content}].")
    responses: list[NoNulStr | ResponseIn] = Field(max_length=HARD_MAX_RESPONSES)
    metadata: Metadata | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: str | list[Message]) -> str | list[Message]:
        limit = get_settings().max_text_chars
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("prompt is empty")
            if len(value) > limit:
                raise ValueError(f"prompt is longer than {limit} characters")
        else:
            if not any(m.content.strip() for m in value):
                raise ValueError("prompt has no message with content")
            if sum(len(m.content) for m in value) > limit:
                raise ValueError(f"prompt is longer than {limit} characters")
        return value

    @field_validator("responses")
    @classmethod
    def _enough_responses(cls, value: list[str | ResponseIn]) -> list[str | ResponseIn]:
        settings = get_settings()
        if len(value) > settings.max_responses_per_prompt:
            raise ValueError(f"at most {settings.max_responses_per_prompt} responses per prompt")
        texts = [r if isinstance(r, str) else r.text for r in value]
        for text in texts:
            if len(text) > settings.max_text_chars:
                raise ValueError(f"a response is longer than {settings.max_text_chars} characters")
        if sum(1 for t in texts if t.strip()) < 2:
            raise ValueError("at least 2 non-empty responses are needed to form a pair")
        return value

    def normalized_responses(self) -> list[ResponseIn]:
        """Every response as an object."""
        return [ResponseIn(text=r) if isinstance(r, str) else r for r in self.responses]


class IngestRequest(Input):
    items: list[PromptItem] = Field(min_length=1, max_length=HARD_MAX_ITEMS)

    @field_validator("items")
    @classmethod
    def _batch_cap(cls, value: list[PromptItem]) -> list[PromptItem]:
        cap = get_settings().max_items_per_batch
        if len(value) > cap:
            raise ValueError(f"at most {cap} items per request; split the batch")
        return value


class IngestConflict(BaseModel):
    index: int
    external_id: str
    detail: str


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    conflicts: list[IngestConflict]
    job_id: uuid.UUID | None


class UploadResult(BaseModel):
    job_id: uuid.UUID = Field(description="GET /v1/jobs/{job_id}: counters and embedding progress.")
    lines: int = Field(description="Lines read (blank ones included).")
    accepted: int = Field(description="Prompts stored.")
    duplicates: int = Field(description="Lines whose external_id already holds the same content.")
    errors: int = Field(description="Lines refused; GET /v1/jobs/{job_id}/errors says which and why.")
    complete: bool = Field(
        description="False when the body broke off (see error); the lines read are stored."
    )
    error: str | None = None


class LineError(BaseModel):
    line: int = Field(description="1-based line number in the uploaded (uncompressed) file.")
    external_id: str | None
    field: str | None = Field(description="The field at fault, as a 422 names it (null: the whole line).")
    detail: str


class ResponseRead(BaseModel):
    id: uuid.UUID
    position: int
    external_id: str | None
    model: str | None
    text: str
    embedded: bool
    truncated: bool | None


class PromptPair(BaseModel):
    id: uuid.UUID
    response_a_id: uuid.UUID
    response_b_id: uuid.UUID
    strategy: str
    rank: int
    similarity: float
    priority: float = Field(description="The strategy's score; the queue hands out the highest first.")
    status: str
    labels: int
    redundant_with: RedundantWith | None = Field(
        default=None, description="Status redundant: the labelled pairs that made it so (else null)."
    )
    outcome: OutcomeRead = Field(description="What the pair's labels decide now (the export's rule).")


class Collapsed(BaseModel):
    response_id: uuid.UUID
    reason: Literal["empty", "exact_duplicate", "near_duplicate"]
    duplicate_of: uuid.UUID | None


class PromptRead(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    external_id: str
    prompt: str | list[dict[str, str]]
    metadata: dict[str, Any] | None
    status: PromptStatus
    job_id: uuid.UUID | None
    created_at: datetime
    responses: list[ResponseRead]
    similarity_matrix: list[list[float | None]] | None = Field(
        description="Cosine similarity between responses, in position order (null until all are embedded)."
    )
    collapsed: list[Collapsed] = Field(description="Responses left out of pairing, and why.")
    pairs: list[PromptPair] = Field(description="The pairs chosen for this prompt, best first.")


class PromptSummary(BaseModel):
    id: uuid.UUID
    external_id: str
    status: PromptStatus
    responses: int
    pairs: int
    labels: int
    created_at: datetime
