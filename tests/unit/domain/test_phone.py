"""Phone normalization: every way a person or WhatsApp writes one Indonesian number."""

from __future__ import annotations

import pytest

from leadstream.domain.phone import InvalidPhone, from_wa_id, normalize_phone

SAME_LEAD = "+6281312345678"
TYPED = [
    "+6281312345678", "+62 813-1234-5678", "+62 (813) 1234 5678", "+62.813.1234.5678",
    "0813 1234 5678", "0813-1234-5678", "081312345678", "(0813) 1234-5678",
    "6281312345678", "62 813 1234 5678", "62-813-1234-5678", "006281312345678",
    "00 62 813 1234 5678", "813 1234 5678", "81312345678", " +6281312345678 ",
    "+62\u00a0813\u00a01234\u00a05678", "0813/1234/5678",
]


@pytest.mark.parametrize("raw", TYPED)
def test_typed_forms_of_one_number_are_one_identity(raw: str) -> None:
    assert normalize_phone(raw, "ID") == SAME_LEAD


@pytest.mark.parametrize("raw,expected", [
    # the national number that itself starts with 62 must not get a second 62
    ("62812345678", "+62812345678"),
    ("+62812345678", "+62812345678"),
    ("0812345678", "+62812345678"),
    ("62 812 345 678", "+62812345678"),
    ("6285712345678", "+6285712345678"),
    ("085712345678", "+6285712345678"),
    ("+6221 5551234", "+62215551234"),         # Jakarta landline
    ("021 5551234", "+62215551234"),
    ("+1 415 555 2671", "+14155552671"),       # foreign numbers keep their country
    ("+65 8123 4567", "+6581234567"),
    ("0065 8123 4567", "+6581234567"),
    ("+44 20 7946 0958", "+442079460958"),
])
def test_special_and_foreign_numbers(raw: str, expected: str) -> None:
    assert normalize_phone(raw, "ID") == expected


@pytest.mark.parametrize("raw,region,expected", [
    ("8123 4567", "SG", "+6581234567"),
    ("(415) 555-2671", "US", "+14155552671"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("0813 1234 5678", "id", "+6281312345678"),
])
def test_workspace_region_override(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize("wa_id,expected", [
    ("6281312345678", SAME_LEAD),
    ("+6281312345678", SAME_LEAD),
    ("62812345678", "+62812345678"),
    ("14155552671", "+14155552671"),
    ("6581234567", "+6581234567"),
])
def test_wa_id_is_international_without_plus(wa_id: str, expected: str) -> None:
    assert from_wa_id(wa_id) == expected


@pytest.mark.parametrize("raw", [
    "", "   ", "abc", "+62 abc 123", "123", "0", "+0", "+62", "0813", "+999 123 456 789",
    "62-", "++6281312345678", "0813 1234 5678 9999 1234", "phone: 0813",
])
def test_invalid_numbers_raise_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidPhone) as exc:
        normalize_phone(raw, "ID")
    assert str(exc.value)


@pytest.mark.parametrize("wa_id", ["", "abc", "0813", "999999", "ID.1234567890"])
def test_invalid_wa_ids_raise(wa_id: str) -> None:
    with pytest.raises(InvalidPhone):
        from_wa_id(wa_id)


def test_remembered_numbers_answer_the_same_and_failures_are_never_remembered() -> None:
    """The cache in front of `phonenumbers` changes nothing but speed."""
    first = [normalize_phone("0812-3456-7890"), from_wa_id("6281234567890")]
    assert [normalize_phone("0812-3456-7890"), from_wa_id("6281234567890")] == first
    assert first == ["+6281234567890", "+6281234567890"]
    for _ in range(2):  # raises every time, not only the first
        with pytest.raises(InvalidPhone):
            normalize_phone("0812")
        with pytest.raises(InvalidPhone):
            from_wa_id("12ab")
    # the region is part of what is remembered
    assert normalize_phone("0412 345 678", "AU") == "+61412345678"
    with pytest.raises(InvalidPhone):
        normalize_phone("0412 345 678", "ID")


@pytest.mark.parametrize(("typed", "region", "digits"), [
    ("0813 1234", "ID", "628131234"),
    ("62813 1234", "ID", "628131234"),
    ("+62 813-1234", "ID", "628131234"),
    ("0062 813 1234", "ID", "628131234"),
    ("(0813) 1234.56", "ID", "62813123456"),
    ("1234 567", "ID", "1234567"),  # a fragment from the middle, as typed
    ("0151 2345", "DE", "491512345"),  # the trunk 0 in the workspace's region
    ("555 1234", "US", "5551234"),
    ("Toko 2020", "ID", None),  # text
    ("081", "ID", None),  # too short to be a number
    ("0813+1234", "ID", None),
])
def test_phone_fragment(typed: str, region: str, digits: str | None) -> None:
    from leadstream.domain.phone import phone_fragment

    assert phone_fragment(typed, region) == digits


def test_every_typing_of_a_number_finds_its_e164() -> None:
    """Over numbers and the ways people type them: the fragment is in the E.164 digits."""
    from leadstream.domain.phone import normalize_phone, phone_fragment

    for n in ("081312345678", "085712340000", "0211234567"):
        e164 = normalize_phone(n)
        national = n[1:]
        for typed in (n, "62" + national, "+62 " + national[:3] + "-" + national[3:],
                      "0062" + national, n[:4] + " " + n[4:8] + " " + n[8:]):
            frag = phone_fragment(typed)
            assert frag is not None and frag in e164, (typed, frag, e164)
