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

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, StringConstraints, ValidationError
from pydantic_core import SchemaValidator

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


M = TypeVar("M", bound=BaseModel)


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


def _without_nul_stripping(schema: Any) -> Any:
    """A copy of a pydantic core schema with `strip_nul` taken out, and the length bound it
    pushed into a Python validator put back on the string itself (where pydantic-core checks
    it in Rust)."""
    if isinstance(schema, list):
        return [_without_nul_stripping(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    fn = schema.get("function", {}).get("function") if kind in (
        "function-before", "function-after") else None
    if kind == "function-before" and fn is strip_nul:
        return _without_nul_stripping(schema["schema"])
    if (kind == "function-after" and isinstance(fn, functools.partial)
            and getattr(fn.func, "__name__", "") == "max_length_validator"):
        inner = _without_nul_stripping(schema["schema"])
        if isinstance(inner, dict) and inner.get("type") == "str":
            return {**inner, "max_length": fn.keywords["max_length"]}
        return {**schema, "schema": inner}
    return {k: _without_nul_stripping(v) for k, v in schema.items()}


def _models(schema: Any) -> set[type]:
    if isinstance(schema, list):
        return set().union(*map(_models, schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    found = {schema["cls"]} if schema.get("type") == "model" else set()
    return found.union(*(_models(v) for v in schema.values()))


def _validator(schema: Any) -> SchemaValidator:
    """A validator built from `schema` itself. pydantic-core takes a complete model's own
    validator wherever a schema names the model (its "prebuilt" validator: the one with
    `strip_nul`), so the models are marked incomplete while it builds this one."""
    classes = _models(schema)
    flags = {c: c.__dict__.get("__pydantic_complete__") for c in classes}
    try:
        for c in classes:
            type.__setattr__(c, "__pydantic_complete__", False)
        return SchemaValidator(schema)
    finally:
        for c, flag in flags.items():
            type.__setattr__(c, "__pydantic_complete__", flag)


class JsonDecoder(Generic[M]):
    """`model.model_validate_json` for the hot path: the same model, the same bounds, without
    a Python call per string field to strip NULs when the JSON cannot hold one. A JSON string
    holds U+0000 only as the escape `\\u0000` (JSON parsers refuse the raw character), so JSON
    without that escape takes a validator built from the model's own schema minus
    `strip_nul`: an inbound event in 3.7 µs against 6.4 (BENCHMARKS.md, session 14). Anything
    else, and any error (so the reason a record is refused reads as before), goes through
    the model itself."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self.fast = _validator(_without_nul_stripping(model.__pydantic_core_schema__))

    def __call__(self, raw: bytes) -> M:
        return self._either(raw, raw, self.fast.validate_json, self.model.model_validate_json)

    def python(self, raw: bytes, data: dict[str, Any]) -> M:
        """`model.model_validate(data)`, where `data` was decoded from `raw`."""
        return self._either(raw, data, self.fast.validate_python, self.model.model_validate)

    @staticmethod
    def _either(raw: bytes, value: Any, fast: Callable[[Any], Any],
                model: Callable[[Any], M]) -> M:
        if b"\\u0000" not in raw:
            try:
                out: M = fast(value)
                return out
            except ValidationError:
                pass
        return model(value)
