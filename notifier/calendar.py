"""The billing calendar: bank business days and the dates of one invoice (RULES.md).

Pure: every function takes the dates it needs and reads no clock. The holiday tables come from the
`holidays` package (B3's calendar is exactly the bank calendar the rules ask for), computed for the
years asked and cached.
"""
from __future__ import annotations

import calendar as _stdcal
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache


def _holidays_class(module_name: str, class_name: str):
    """A class of the `holidays` package, loaded from its own module file.

    Importing `holidays.financial.brasil_bolsa_balcao` or `holidays.countries.brazil` the usual
    way first runs its package's `__init__`, which imports every exchange or every country (and
    `holidays.financial` every country too, through Colombia): 0.15–0.25 s at each start of the CLI.
    The two modules need only the `holidays` core, so each is executed alone, under its own name,
    once, when a year is first asked for.
    """
    import importlib.util
    import sys
    from pathlib import Path

    import holidays

    module = sys.modules.get(module_name)
    if module is None:
        path = Path(holidays.__file__).parent.joinpath(*module_name.split(".")[1:]).with_suffix(".py")
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    return getattr(module, class_name)


def brazil_national_holidays(years):
    """Brazil's national holidays (`holidays.country_holidays("BR")`), for contact hours."""
    return _holidays_class("holidays.countries.brazil", "Brazil")(years=years)


ONE_DAY = timedelta(days=1)


def month_end(day: date) -> date:
    return day.replace(day=_stdcal.monthrange(day.year, day.month)[1])


def clamp_day(year: int, month: int, day: int) -> date:
    """The date with that day number in that month, or the month's last day when it is shorter."""
    return date(year, month, min(day, _stdcal.monthrange(year, month)[1]))


def add_months(day: date, months: int) -> date:
    """Same day number `months` later, clamped (31/01 + 1 month = 28/02 or 29/02)."""
    index = day.year * 12 + day.month - 1 + months
    return clamp_day(index // 12, index % 12 + 1, day.day)


def due_date_for(issued: date, due_day: int) -> date:
    """The first day numbered `due_day` on or after `issued`, clamped to its month's last day.

    A legacy due day 1–4 on an invoice issued on the 5th therefore falls in the next month.
    """
    candidate = clamp_day(issued.year, issued.month, due_day)
    if candidate >= issued:
        return candidate
    first_of_next = add_months(issued.replace(day=1), 1)
    return clamp_day(first_of_next.year, first_of_next.month, due_day)


@lru_cache(maxsize=256)
def _bank_holidays(year: int) -> frozenset[date]:
    # B3 closes on 24 December but banks serve the public that day: the rules leave it out.
    table = _holidays_class("holidays.financial.brasil_bolsa_balcao", "BrasilBolsaBalcao")(years=year)
    return frozenset(d for d, name in table.items() if not (d.month == 12 and d.day == 24))


@dataclass(frozen=True)
class BankCalendar:
    """Bank business days: B3's calendar (without 24 December) plus the company's local holidays."""
    extra_holidays: frozenset[date] = frozenset()

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in _bank_holidays(day.year) and day not in self.extra_holidays

    def on_or_after(self, day: date) -> date:
        while not self.is_business_day(day):
            day += ONE_DAY
        return day

    def add_business_days(self, day: date, count: int) -> date:
        for _ in range(count):
            day = self.on_or_after(day + ONE_DAY)
        return day


@dataclass(frozen=True, slots=True)
class InvoiceDates:
    due: date
    effective_due: date
    overdue: date
    suspension: date
    deletion: date

    def anchor(self, name: str) -> date:
        return getattr(self, name)


def invoice_dates(due: date, cal: BankCalendar, settlement_days: int) -> InvoiceDates:
    """Every date of one invoice's life, from its due date (RULES.md, "Dates of one invoice")."""
    return _invoice_dates(due, cal, settlement_days)


@lru_cache(maxsize=4096)
def _invoice_dates(due: date, cal: BankCalendar, settlement_days: int) -> InvoiceDates:
    # Most invoices share a handful of due dates, so the cache makes planning 50k accounts cheap.
    effective = cal.on_or_after(due)
    overdue = cal.add_business_days(effective, settlement_days)
    suspension = max(month_end(due), overdue)
    return InvoiceDates(due, effective, overdue, suspension, add_months(due, 1))
