"""Deterministic ids: the same input, stage and config always give the same row id (resume relies on it)."""

import hashlib
import json
from typing import Any


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hex digest of the parts; dicts and lists are hashed as canonical JSON."""
    digest = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True, default=str)
        digest.update(text.encode())
        digest.update(b"\x1f")  # unit separator: ("ab", "c") and ("a", "bc") must differ
    return digest.hexdigest()[:length]


def row_id(fingerprint: str, parent_id: str | None, index: int = 0) -> str:
    return stable_hash(fingerprint, parent_id or "", index)
