"""The "Open in Inbox" link: a workspace's inbox URL pattern filled in for one lead.

Kapso's inbox lives at a URL of the workspace's own project, so the pattern is configured per
workspace (`leadstream workspace add --inbox-url`), e.g.
`https://app.kapso.ai/projects/<project>/inbox/{conversation_id}`. Placeholders:
`{conversation_id}` (required) and `{phone}` (E.164 without the plus). A lead without a Kapso
conversation has no link.
"""

from __future__ import annotations

import string
from functools import lru_cache
from urllib.parse import quote, urlsplit

PLACEHOLDERS = frozenset({"conversation_id", "phone"})
MAX_PATTERN = 500


@lru_cache(maxsize=1024)
def check_pattern(pattern: str) -> str | None:
    """Why `pattern` cannot be an inbox URL pattern, or None when it can."""
    if len(pattern) > MAX_PATTERN:
        return f"at most {MAX_PATTERN} characters"
    try:
        parts = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(pattern)
                 if f is not None]
    except ValueError as exc:
        return f"not a pattern: {exc}"
    if any(spec or conv for _, spec, conv in parts):
        return "placeholders take no format spec or conversion"
    fields = {f for f, _, _ in parts}
    if "conversation_id" not in fields:
        return "must contain {conversation_id}"
    if fields - PLACEHOLDERS:
        return "unknown placeholder(s): " + ", ".join(sorted(fields - PLACEHOLDERS))
    url = urlsplit(pattern.replace("{", "").replace("}", ""))
    if url.scheme not in ("http", "https") or not url.netloc:
        return "must be an http(s) URL"
    return None


def inbox_link(pattern: str | None, conversation_id: str | None,
               phone_e164: str | None) -> str | None:
    """The lead's inbox URL, or None (no pattern, or no conversation yet)."""
    if not pattern or not conversation_id or check_pattern(pattern) is not None:
        return None  # (a pattern written around the CLI is not trusted either)
    return pattern.format(conversation_id=quote(conversation_id, safe=""),
                          phone=quote((phone_e164 or "").lstrip("+"), safe=""))
