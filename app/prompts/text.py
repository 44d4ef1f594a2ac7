"""A prompt as one text: what its vector is computed from (and what a DPO export calls the prompt)."""

from __future__ import annotations

import hashlib
from typing import Any


def prompt_text(prompt: Any) -> str:
    """A string prompt as it is; chat messages as a role-tagged transcript, turns separated by blank lines."""
    # Exports use this too (app/exports/rows.py), so the embedded text is the exported prompt.
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def prompt_text_sha256(prompt: Any) -> str:
    """The key the prompt's vector is stored under (with the model name), as for a response text."""
    return hashlib.sha256(prompt_text(prompt).encode("utf-8")).hexdigest()
