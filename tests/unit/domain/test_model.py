"""`working_copy`: the copy the rules change; its containers are new, its elements shared
(domain.model)."""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime

import pytest
from pydantic import BaseModel

from leadstream.domain import daily, model
from leadstream.domain.daily import DayAggregate, Said
from leadstream.domain.model import _container_fields, working_copy
from leadstream.domain.rules import new_lead

MODELS = [c for mod in (model, daily) for _, c in inspect.getmembers(mod, inspect.isclass)
          if issubclass(c, BaseModel) and c.__module__ == mod.__name__]


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_field_that_can_hold_a_container_is_copied(cls: type[BaseModel]) -> None:
    texts = {n: repr(f.annotation) for n, f in cls.model_fields.items()}
    may_hold = {n for n, t in texts.items() if "list" in t or "dict" in t or "Any" in t}
    assert set(_container_fields(cls)) == may_hold, texts


def test_a_working_copy_changes_nothing_of_the_original() -> None:
    lead = new_lead("ws1:+6281234567890", datetime(2026, 12, 1, tzinfo=UTC))
    lead.pain_points = ["ongkir"]
    lead.sarah_extra = {"budget": "5 juta"}
    c = working_copy(lead)
    c.pain_points.append("stok")
    c.sarah_extra["budget"] = "10 juta"
    c.merged_from.append("ws1:+62899")
    c.name = "Budi"
    assert lead.pain_points == ["ongkir"] and lead.sarah_extra == {"budget": "5 juta"}
    assert lead.merged_from == [] and lead.name is None
    assert c.model_dump() == {**lead.model_dump(), "name": "Budi", "pain_points": [
        "ongkir", "stok"], "sarah_extra": {"budget": "10 juta"}, "merged_from": ["ws1:+62899"]}
    assert c.model_fields_set == lead.model_fields_set | {"name"}


def test_elements_are_shared_and_lists_of_models_are_new_lists() -> None:
    said = Said(at=datetime(2026, 12, 1, tzinfo=UTC), direction="inbound", text="halo")
    agg = DayAggregate(lead_id="l", lead_key="ws1:+62", workspace_id="ws1",
                       day=date(2026, 12, 1), texts=[said], seen_ids=["m:1"])
    c = working_copy(agg)
    assert c.texts is not agg.texts and c.texts[0] is said
    c.seen_ids.append("m:2")
    assert agg.seen_ids == ["m:1"]
