"""Lead identity: `lead_key = "<workspace_id>:<identity>"`, `lead_id = uuid5(lead_key)`.

The identity is the E.164 number when one is known, else the business-scoped user id
(`ID.1234...`). `lead_id` is derived, so a replay rebuilds the same ids.

Where an identity ends up is decided in two steps, both from the log: the edge keys a record
by what its payload says (`identity_of`, no lookups), and the worker that owns that key
forwards it when the identity is an alias of another lead (`domain.merge`: a merge, a number
change, a business-scoped id seen with a number). No step reads the replica.
"""

from __future__ import annotations

import uuid

#: Fixed namespace: changing it would change every lead_id.
LEAD_NAMESPACE = uuid.UUID("6f1c2a53-1b7e-5d0a-9c38-2f1e4b7a9d10")


def lead_key(workspace_id: str, identity: str) -> str:
    if not workspace_id or ":" in workspace_id:
        raise ValueError(f"workspace id {workspace_id!r} must be non-empty and contain no ':'")
    if not identity:
        raise ValueError("identity must be non-empty")
    return f"{workspace_id}:{identity}"


def identity_of(phone_e164: str | None, bsuid: str | None) -> str | None:
    """The identity a payload names: its number when it has one, else its business-scoped
    id, else none (the caller refuses the payload)."""
    return phone_e164 or bsuid or None


def lead_id_for(key: str) -> str:
    return str(uuid.uuid5(LEAD_NAMESPACE, key))


def split_key(key: str) -> tuple[str, str]:
    workspace_id, _, identity = key.partition(":")
    return workspace_id, identity


def stable_id(*parts: str) -> str:
    """A deterministic id for derived records (history rows, notes) from their source."""
    return str(uuid.uuid5(LEAD_NAMESPACE, "\x1f".join(parts)))
