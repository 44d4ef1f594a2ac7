"""Shared pieces of request schemas: strict inputs, storable text and int4-sized integers.

Every string a client sends is checked once, by its type: ``NoNulStr`` for plain fields, ``check_json``
for free-form JSON (prompt metadata). Postgres refuses NUL in text, and a lone surrogate (``"\\ud800"``,
valid in JSON, not in UTF-8) cannot be hashed, encoded or stored; both are a 422 naming the field, never
a 500 from deep inside a service. Integers that go to an ``integer`` column are ``Int32``: beyond it
Postgres answers "integer out of range".
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def text_problem(value: str) -> str | None:
    """Why this string cannot be stored as text (a NUL, a lone surrogate), or None."""
    if "\x00" in value:
        return "NUL characters are not allowed"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "lone surrogates (unpaired \\ud800-\\udfff) are not valid text"
    return None


def _storable_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_json(value: Any, where: str = "") -> None:
    """Raise ValueError naming the first key or value of free-form JSON that cannot be stored: a NUL or a
    lone surrogate in a key or string, or a non-finite number (Python's json reads `NaN`, JSON has none)."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(f"{where or 'value'}: {problem}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where or 'value'}: only finite numbers are allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key)
            if problem is not None:
                raise ValueError(f"key {key!r} of {where or 'the object'}: {problem}")
            check_json(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{where}[{index}]")


# Text a client sends: no NUL and no lone surrogate (the name is older than the surrogate check).
NoNulStr = Annotated[str, AfterValidator(_storable_text)]
# JSON integers only: no `true`, `1.0` or `"5"` silently turned into numbers.
StrictInt = Annotated[int, Strict()]
# A StrictInt that fits a Postgres `integer` column; every integer input stored in one uses it.
Int32 = Annotated[int, Strict(), Field(ge=INT32_MIN, le=INT32_MAX)]


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_8601(value: Any) -> Any:
    # pydantic also reads a number (or numeric text, as every query value is) as Unix seconds.
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATE.match(value)):
        return value
    raise ValueError("expected an ISO 8601 date-time with a time zone, e.g. 2026-01-31T09:00:00Z")


# A date-time as the API documents it: ISO 8601 text with a zone (`format: date-time`), never a number.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]


class Input(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")
