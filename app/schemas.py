"""Shared pieces of request schemas: strict inputs and NUL-free strings."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Strict


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


NoNulStr = Annotated[str, AfterValidator(_no_nul)]
# JSON integers only: no `true`, `1.0` or `"5"` silently turned into numbers.
StrictInt = Annotated[int, Strict()]


class Input(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")
