"""Phone numbers to E.164 with `phonenumbers`.

Two sources, two rules:
* WhatsApp ids (`wa_id`, `from`, `to`) are always international digits without '+'.
  They are parsed as `+<digits>` and nothing else.
* Numbers typed by people (Sarah's `contact_phone`, a human edit) may be national
  (`0813...`, `813...`), international (`+62...`, `0062...`) or international without
  '+' (`62813...`). A bare digit string that starts with the workspace country's calling
  code and is valid that way is international: `62812345678` is `+62812345678`, never
  `+6262812345678` (which `phonenumbers` would otherwise produce for region ID).
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

_STRIP = re.compile(r"[\s\-().\u00a0/]")
#: distinct numbers remembered: `phonenumbers` parses and validates in ~50 us, which was most
#: of the webhook's per-event parsing (bench/suite.py profile); a sales line sees the same
#: contacts again and again. Pure functions of their arguments, so caching changes nothing
#: else (failures are not cached: they raise).
CACHE_SIZE = 1 << 16


class InvalidPhone(ValueError):
    """A number that is not a valid phone number; carries the reason for the dead-letter topic."""


def _e164(num: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(num, PhoneNumberFormat.E164)


def _parse_international(digits: str) -> phonenumbers.PhoneNumber | None:
    try:
        num = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return None
    return num if phonenumbers.is_valid_number(num) else None


@lru_cache(maxsize=CACHE_SIZE)
def from_wa_id(wa_id: str) -> str:
    """E.164 of a WhatsApp id (international digits, optionally with '+')."""
    digits = _STRIP.sub("", wa_id).lstrip("+")
    if not digits.isdigit():
        raise InvalidPhone(f"wa_id {wa_id!r} is not all digits")
    num = _parse_international(digits)
    if num is None:
        raise InvalidPhone(f"wa_id {wa_id!r} is not a valid international number")
    return _e164(num)


def normalize_phone(raw: str, region: str = "ID") -> str:
    """E.164 of a number typed by a person, with `region` as the default country."""
    if raw is None or not str(raw).strip():
        raise InvalidPhone("empty phone number")
    return _normalize(str(raw), region)


@lru_cache(maxsize=CACHE_SIZE)
def _normalize(raw: str, region: str) -> str:
    text = _STRIP.sub("", raw)
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        if not text[1:].isdigit():
            raise InvalidPhone(f"{raw!r} contains characters that are not digits")
        num = _parse_international(text[1:])
        if num is None:
            raise InvalidPhone(f"{raw!r} is not a valid international number")
        return _e164(num)
    if not text.isdigit():
        raise InvalidPhone(f"{raw!r} contains characters that are not digits")
    country_code = phonenumbers.country_code_for_region(region.upper())
    if country_code and text.startswith(str(country_code)):
        num = _parse_international(text)
        if num is not None:
            return _e164(num)
    try:
        num = phonenumbers.parse(text, region.upper())
    except NumberParseException as exc:
        raise InvalidPhone(f"{raw!r}: {exc}") from exc
    if not phonenumbers.is_valid_number(num):
        raise InvalidPhone(f"{raw!r} is not a valid number for region {region.upper()}")
    return _e164(num)


_PHONE_TYPED = re.compile(r"^\+?[\d\s().\-]+$")


def phone_fragment(q: str, region: str = "ID") -> str | None:
    """The digits to look for in E.164 numbers when `q` is (part of) a phone number as a
    person types it, else None (not phone-like: search it as text).

    `0813 1234`, `62813 1234`, `+62 813-1234` and `0062 813 1234` all give `628131234`: the
    trunk `0` becomes the region's country code, `+` and `00` are dropped; a fragment from
    the middle (`1234 567`) stays as typed. At least 4 digits, so a short number in a
    business name is still text."""
    text = q.strip()
    if not _PHONE_TYPED.match(text):
        return None
    digits = re.sub(r"\D", "", text)
    if len(digits) < 4:
        return None
    if text.startswith("+"):
        return digits
    if digits.startswith("00"):
        return digits[2:]
    if digits.startswith("0"):
        code = phonenumbers.country_code_for_region(region.upper())
        if code and _trunk(region) == "0":
            return f"{code}{digits[1:]}"
    return digits


@lru_cache(maxsize=64)
def _trunk(region: str) -> str | None:
    """The region's national (trunk) prefix: `0` in Indonesia and most of the world."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
    return meta.national_prefix if meta is not None else None
