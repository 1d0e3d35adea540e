"""Contact hours (São Paulo Lei 15.426/2014 by default) and the do-not-contact list: pure functions."""
from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from notifier.config import ContactHours
from notifier.staff.holds import normalize, parse_do_not_contact
from notifier.billing.hours import allowed, next_allowed

SP = ZoneInfo("America/Sao_Paulo")
LAW = ContactHours()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SP)


@pytest.mark.parametrize("moment, ok", [
    ("2026-11-24 07:59", False), ("2026-11-24 08:00", True), ("2026-11-24 19:59", True), ("2026-11-24 20:00", False),
    ("2026-11-28 13:59", True), ("2026-11-28 14:00", False),  # Saturday until 14:00
    ("2026-11-29 10:00", False),  # Sunday
    ("2026-11-20 10:00", False),  # Consciência Negra, a national holiday (a Friday)
    ("2026-11-02 10:00", False),  # Finados
])
def test_whatsapp_hours(moment, ok):
    assert allowed("whatsapp", at(moment), LAW) is ok
    assert allowed("sms", at(moment), LAW) is ok and allowed("social", at(moment), LAW) is ok


def test_email_and_staff_any_time():
    assert allowed("email", at("2026-11-29 03:00"), LAW) and allowed("staff", at("2026-11-20 23:00"), LAW)


@pytest.mark.parametrize("moment, expected", [
    ("2026-11-24 21:30", "2026-11-25 08:00"),  # evening: next morning
    ("2026-11-24 06:00", "2026-11-24 08:00"),  # early: same day
    ("2026-11-28 15:00", "2026-11-30 08:00"),  # Saturday afternoon: skips Sunday
    ("2026-11-19 21:00", "2026-11-21 08:00"),  # the 20th is a holiday: Saturday morning
    ("2026-11-24 10:00", "2026-11-24 10:00"),  # already allowed
])
def test_next_allowed(moment, expected):
    assert next_allowed("whatsapp", at(moment), LAW) == at(expected)


def test_configured_hours_and_never():
    never = ContactHours(weekdays=None, saturday=None)
    assert next_allowed("sms", at("2026-11-24 10:00"), never) is None
    late = ContactHours(weekdays=(time(9), time(18)))
    assert not allowed("sms", at("2026-11-24 08:30"), late)


def test_do_not_contact_file_formats():
    numbers = parse_do_not_contact(["# Procon-SP export", "telefone;data", "11987654321;2026-01-01",
                                    "+55 (21) 3333-4444", "", "5511900000001,x"])
    assert numbers == {"5511987654321", "552133334444", "5511900000001"}
    assert normalize("+5511987654321") in numbers
