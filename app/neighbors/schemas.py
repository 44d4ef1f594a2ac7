"""Neighbour read bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from app.neighbors.index import IndexKind


class IndexSource(StrEnum):
    FILE = "file"  # the newest version built by the neighbors.build_index task
    ON_THE_FLY = "on_the_fly"  # no file yet; ranked exactly from the stored vectors for this request


class IndexInfo(BaseModel):
    source: IndexSource
    version: int | None = Field(description="The file version; null when ranked on the fly.")
    kind: IndexKind
    indexed_texts: int = Field(description="Distinct texts (response or prompt texts) in the index.")
    created_at: datetime | None


class NeighborResponse(BaseModel):
    response_id: uuid.UUID
    prompt_id: uuid.UUID
    prompt_external_id: str
    similarity: float = Field(description="Cosine similarity to the queried response.")
    text: str = Field(description="The response text, cut at 500 characters.")
    text_truncated: bool


class NeighborsRead(BaseModel):
    response_id: uuid.UUID
    prompt_id: uuid.UUID
    k: int
    index: IndexInfo
    exact_duplicates: list[NeighborResponse] = Field(
        description="Other responses of the project with the identical text (not counted in k)."
    )
    neighbors: list[NeighborResponse] = Field(description="The k most similar other texts' responses.")


class PromptRef(BaseModel):
    prompt_id: uuid.UUID
    external_id: str


class PromptGroup(BaseModel):
    size: int = Field(description="Prompts in the group (only the first 10 by external id are listed).")
    min_similarity: float = Field(
        description="The lowest cosine similarity among the links that join the group (1.0: identical texts)."
    )
    prompts: list[PromptRef]


class NeighborStats(BaseModel):
    index: IndexInfo
    embedded_texts: int = Field(description="Distinct response texts of the project with a vector now.")
    threshold: float = Field(
        description="Cosine similarity at or above which two texts count as near-duplicates: the project's "
        "near_duplicate_threshold (0.98 when null), but at least 0.9 when read from an index file."
    )
    near_duplicate_text_pairs: int = Field(
        description="Pairs of distinct texts at or above the threshold (each text's 10 nearest considered)."
    )
    near_duplicate_response_pairs: int
    responses_with_near_duplicates: int
    exact_duplicate_response_pairs: int
    responses_with_exact_duplicates: int
    prompt_index: IndexInfo = Field(
        description="The index of prompt texts (a chat prompt: its turns as one text)."
    )
    embedded_prompt_texts: int = Field(description="Distinct prompt texts of the project with a vector now.")
    prompts_with_near_duplicates: int = Field(
        description="Prompts with another prompt of the project at or above the threshold (identical "
        "texts included)."
    )
    near_duplicate_prompt_pairs: int = Field(
        description="Pairs of prompts at or above the threshold (each text's 10 nearest considered; "
        "identical texts included)."
    )
    exact_duplicate_prompt_pairs: int = Field(description="Pairs of prompts with the identical text.")
    prompt_group_count: int = Field(description="Groups of prompts joined by near-duplicate links.")
    prompt_groups: list[PromptGroup] = Field(
        description="The 20 largest groups (ties: by first text hash), each with up to 10 prompts."
    )
