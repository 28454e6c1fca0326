"""Email bodies filled in from a stencil are exactly what Jinja renders, for every kind and
language, whatever the values hold."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saldo.i18n import SUPPORTED_LANGUAGES
from saldo.notify import render_email as jinja_render_email
from saldo.notify.stencil import render_email, stencil_safe
from saldo.services import notify_render as nr

TODAY = dt.date(2026, 11, 3)
KEY = b"k" * 32


def context(kind: str, language: str, *, name: str, agency: str, key: bytes | None) -> dict:
    party = nr.Party(
        debtor_id=7, name=name, email="ana@example.com", phone="", whatsapp="",
        language=language, timezone="America/Argentina/Buenos_Aires", country="AR",
        creditor="Servicios & Hijos <SA>", agency=agency, currency="ARS",
    )  # fmt: skip
    links = nr.links_for(
        "https://saldo.example.com", debtor_id=7, channel="email", unsubscribe_key=key
    )
    values = nr.sample_values(kind, party, TODAY, language)
    found = {**nr._common(party, links, language), **values}
    found["dispute_url"] = links.disputes_url
    return found


@pytest.mark.parametrize("kind", nr.PREVIEWABLE)
@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_every_kind_and_language_renders_as_jinja_does(kind, language):
    for name, agency, key in [
        ("Ñandú Pérez", "", KEY),
        ("O'Brien <b>&amp;\"", "Cobros & Asociados", None),
    ]:
        values = context(kind, language, name=name, agency=agency, key=key)
        expected = jinja_render_email(kind, language, dict(values))
        assert render_email(kind, language, values) == expected
        assert render_email(kind, language, values) == expected  # from the stencil now


def test_the_reminders_qualify_and_a_template_with_a_filter_does_not():
    assert stencil_safe("reminder_before_due") and stencil_safe("overdue_administrative")
    assert not stencil_safe("dispute_update")  # `dispute_status | lower` looks inside a value


def test_a_value_holding_a_marker_character_is_rendered_by_jinja():
    values = context("reminder_before_due", "es", name="Ana \ue000 0 \ue001", agency="", key=KEY)
    expected = jinja_render_email("reminder_before_due", "es", dict(values))
    assert render_email("reminder_before_due", "es", values) == expected


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(max_size=40),
    agency=st.text(max_size=20),
    numbers=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3),
)
def test_any_text_in_the_values_renders_as_jinja_does(name, agency, numbers):
    values = context("overdue_preventive", "es", name=name, agency=agency, key=KEY)
    values["invoices"] = [{**values["invoices"][0], "number": n} for n in numbers]
    values["count"] = len(numbers)
    expected = jinja_render_email("overdue_preventive", "es", dict(values))
    assert render_email("overdue_preventive", "es", values) == expected
