"""Input limits: what any value entering the pipeline may be (contract §2; README "Limits").

One place for every bound, so the webhook, the API and the log's record schemas agree. A
value outside them is refused at the edge (API: 422; webhook: the item is dead-lettered with
the reason), never half-applied, and never able to stop the replica for anyone: every bound
here keeps an indexed column's btree entry far below Postgres' limit (~2,700 bytes; 500
characters are at most 2,000 bytes of UTF-8).

U+0000 is the one character Postgres' `text` and `jsonb` refuse; it is stripped (a name with
a NUL in it is still a name).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BeforeValidator, StringConstraints

#: ids (wamids, conversation ids, business-scoped ids, event ids, idempotency keys)
MAX_ID = 256
#: names, authors, phones as typed, short labels (chat phase, priority, status names)
MAX_NAME = 256
#: Sarah's text fields (business type, domisili, ...), each pain point, a status reason
MAX_FIELD = 500
#: a message's text (WhatsApp allows 4,096; captions, templates and Kapso renderings more)
MAX_TEXT = 16_384
#: a note's content
MAX_NOTE = 10_000
#: list fields (pain points)
MAX_LIST = 50
#: Sarah's fields without a column (`sarah_extra`): keys, a key's length, one value's JSON size
MAX_EXTRA_KEYS = 50
MAX_EXTRA_KEY = 64
MAX_EXTRA_VALUE = 4_000
#: items in one Kapso batch or one Meta delivery
MAX_ITEMS = 1_000
#: how far an event's own timestamp may be from its arrival: older than this is history we
#: do not take in; further ahead than this is a wrong clock (it would pin a lead to the top
#: of every list and open a daily window decades away)
MAX_PAST = timedelta(days=5 * 365)
MAX_FUTURE = timedelta(days=1)


def strip_nul(v: Any) -> Any:
    """Drop U+0000 from a string (Postgres refuses it); anything else passes unchanged."""
    if isinstance(v, str) and "\x00" in v:
        return v.replace("\x00", "")
    return v


_NoNul = BeforeValidator(strip_nul)
#: string types: NUL stripped, at most so many characters
Id = Annotated[str, _NoNul, StringConstraints(max_length=MAX_ID)]
#: event ids and lead keys: an id plus a prefix (a workspace id, an event type)
LongId = Annotated[str, _NoNul, StringConstraints(max_length=2 * MAX_ID + 64)]
Name = Annotated[str, _NoNul, StringConstraints(max_length=MAX_NAME)]
FieldText = Annotated[str, _NoNul, StringConstraints(max_length=MAX_FIELD)]
Text = Annotated[str, _NoNul, StringConstraints(max_length=MAX_TEXT)]
NoteText = Annotated[str, _NoNul, StringConstraints(max_length=MAX_NOTE)]


def _no_nul_deep(v: Any) -> Any:
    if isinstance(v, str):
        return strip_nul(v)
    if isinstance(v, list):
        return [_no_nul_deep(x) for x in v]
    if isinstance(v, dict):
        return {strip_nul(str(k)): _no_nul_deep(x) for k, x in v.items()}
    return v


def _bounded_extra(v: dict[str, Any]) -> dict[str, Any]:
    """Sarah's extra fields: any JSON, within bounds, with NULs stripped at every depth."""
    if len(v) > MAX_EXTRA_KEYS:
        raise ValueError(f"at most {MAX_EXTRA_KEYS} fields without a column")
    out: dict[str, Any] = {}
    for k, raw in v.items():
        if not k or len(k) > MAX_EXTRA_KEY:
            raise ValueError(f"a field name is 1 to {MAX_EXTRA_KEY} characters")
        x = _no_nul_deep(raw)
        try:
            size = len(orjson.dumps({k: x}))
        except orjson.JSONEncodeError as exc:  # an integer past 64 bits, a lone surrogate
            raise ValueError(f"field {k[:64]!r} cannot be stored as JSON: {exc}") from None
        if size > MAX_EXTRA_VALUE + len(k) + 8:
            raise ValueError(f"field {k[:64]!r} is over {MAX_EXTRA_VALUE} bytes of JSON")
        out[strip_nul(k)] = x
    return out


SarahExtra = Annotated[dict[str, Any], AfterValidator(_bounded_extra)]


def timestamp_problem(ts: datetime, received_at: datetime) -> str | None:
    """Why an event time is outside the accepted window around its arrival, or None."""
    if ts < received_at - MAX_PAST:
        return f"timestamp {ts.isoformat()} is more than {MAX_PAST.days} days in the past"
    if ts > received_at + MAX_FUTURE:
        return f"timestamp {ts.isoformat()} is in the future"
    return None
