"""Webhook signatures: Kapso's `X-Webhook-Signature` (hex HMAC-SHA256 of the raw body) and
Meta's `X-Hub-Signature-256` (the same, prefixed `sha256=`). Pure: the webhook verifies with
it and the simulator signs with it."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the raw body: what Kapso sends in X-Webhook-Signature."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, given: str | None) -> bool:
    """Constant-time check of a hex HMAC; any header text (non-ASCII too) is just wrong."""
    if not given:
        return False
    given = given.strip()
    if given.startswith("sha256="):
        given = given[len("sha256="):]
    return hmac.compare_digest(sign(secret, body).encode(),
                               given.lower().encode("utf-8", "replace"))
