"""Contact hours: when a customer's phone or social profile may be contacted (RULES.md).

São Paulo's Lei 15.426/2014 allows collection contacts by phone (WhatsApp and SMS included) only
Monday to Friday 08:00–20:00 and Saturday 08:00–14:00, never on Sundays or national holidays; the
notifier applies the same hours to social networks. E-mail and the staff channel go at any time.
The hours are `config.contact_hours`. Pure: every function takes the moment it decides about.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

# Not `holidays.country_holidays("BR")`, which imports every country's module first.
from notifier.billing.calendar import national_holidays as _national_holidays
from notifier.config import ContactHours

RESTRICTED_CHANNELS = ("whatsapp", "sms", "social")
LOOKAHEAD_DAYS = 14  # no allowed moment within two weeks means the hours allow none at all


def window(day: date, hours: ContactHours) -> tuple[time, time] | None:
    """The (start, end) of the day's allowed hours, or None when the day allows none."""
    if day in _national_holidays(day.year):
        return hours.holidays
    if day.weekday() == 6:
        return hours.sunday
    if day.weekday() == 5:
        return hours.saturday
    return hours.weekdays


def allowed(channel: str, at: datetime, hours: ContactHours) -> bool:
    """May a message on `channel` go at `at` (a time in the configured zone)?"""
    if channel not in RESTRICTED_CHANNELS:
        return True
    span = window(at.date(), hours)
    return span is not None and span[0] <= at.time() < span[1]


def next_allowed(channel: str, at: datetime, hours: ContactHours) -> datetime | None:
    """The first moment at or after `at` when `channel` may be used; None if there is none soon."""
    if allowed(channel, at, hours):
        return at
    for days in range(LOOKAHEAD_DAYS + 1):
        day = at.date() + timedelta(days=days)
        span = window(day, hours)
        if span is None:
            continue
        start = datetime.combine(day, span[0], at.tzinfo)
        if start >= at:
            return start
    return None
