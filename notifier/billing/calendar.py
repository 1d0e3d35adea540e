"""The billing calendar: bank business days and the dates of one invoice (RULES.md).

Pure: every function takes the dates it needs and reads no clock. The holiday tables come from the
`holidays` package (B3's calendar is exactly the bank calendar the rules ask for), computed for the
years asked and cached: in memory, and (when the command line keeps caches, notifier/state/caches.py)
in `state.json.cache/holidays/`, one file per table, year and version of `holidays`. Importing
the package's core and building a table cost 60-120 ms of every command that counts a date.
"""
from __future__ import annotations

import calendar as _stdcal
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import orjson

from notifier.state import caches


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


def _table(module_name: str, class_name: str, year: int) -> list[date]:
    """The dates of one `holidays` table for one year, from the cache when it holds them."""
    folder, version = caches.folder("holidays"), _holidays_version()
    path = folder / f"{class_name}-{year}-holidays-{version}.json" if folder and version else None
    if path is not None:
        data = caches.read(path)
        if data is not None:
            try:
                return [date.fromisoformat(d) for d in orjson.loads(data)]
            except (ValueError, TypeError):  # damaged: computed again below, and rewritten
                pass
    dates = sorted(_holidays_class(module_name, class_name)(years=year))
    if path is not None:
        caches.write(path, orjson.dumps([d.isoformat() for d in dates]))
    return dates


@lru_cache(maxsize=1)
def _holidays_version() -> str | None:
    """The installed `holidays` version, from its dist-info folder's name (importlib.metadata, or
    the package's own `__version__`, would cost the import the cache saves); None, and no cache,
    when it cannot be told."""
    import importlib.util
    from pathlib import Path
    try:
        spec = importlib.util.find_spec("holidays")
        found = list(Path(spec.origin).parent.parent.glob("holidays-*.dist-info"))
    except (AttributeError, ImportError, OSError, TypeError, ValueError):
        return None
    return found[0].name[len("holidays-"):-len(".dist-info")] if len(found) == 1 else None


@lru_cache(maxsize=64)
def national_holidays(year: int) -> frozenset[date]:
    """Brazil's national holidays (`holidays.country_holidays("BR")`), for contact hours."""
    return frozenset(_table("holidays.countries.brazil", "Brazil", year))


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
    table = _table("holidays.financial.brasil_bolsa_balcao", "BrasilBolsaBalcao", year)
    return frozenset(d for d in table if not (d.month == 12 and d.day == 24))


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
