"""The simulator's parameter error: which parameters are at fault, so every front end can name them."""

from __future__ import annotations


class ParameterError(ValueError):
    """A simulation parameter out of its range. ``fields`` are the parameters at fault, by their names in
    ``engine.Config`` and the noise models (the CLI prints the message, the API names the fields)."""

    def __init__(self, fields: str | tuple[str, ...], message: str) -> None:
        self.fields = (fields,) if isinstance(fields, str) else fields
        super().__init__(message)
