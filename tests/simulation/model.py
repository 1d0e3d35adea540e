"""The simulated world: accounts, their invoices, when each customer pays, what staff do.

Everything is drawn up front from one seed (`World.generate`), so a failing day can be replayed
with the same seed. The dates of an invoice are computed here from RULES.md's own definitions
(B3's calendar from `holidays`, without 24 December), not by the notifier's code: the oracle must
not share the notifier's mistakes.
"""
from __future__ import annotations

import calendar as _stdcal
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

import holidays

DAY = timedelta(days=1)
POST_DUE = ("overdue", "suspension_warning", "suspended", "deletion_warning", "deletion_due")


# --- the calendar, from RULES.md -------------------------------------------------------------------

@lru_cache(maxsize=None)
def bank_holidays(year: int) -> frozenset[date]:
    """RULES.md: B3's calendar, `holidays.financial_holidays("BVMF")`, without 24 December."""
    return frozenset(d for d in holidays.financial_holidays("BVMF", years=year) if (d.month, d.day) != (12, 24))


@lru_cache(maxsize=None)
def national_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("BR", years=year))


def business_day(d: date) -> bool:
    return d.weekday() < 5 and d not in bank_holidays(d.year)


def next_business_day(d: date) -> date:
    while not business_day(d):
        d += DAY
    return d


def clamp(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, _stdcal.monthrange(year, month)[1]))


def plus_months(d: date, n: int) -> date:
    i = d.year * 12 + d.month - 1 + n
    return clamp(i // 12, i % 12 + 1, d.day)


def due_for(issued: date, due_day: int) -> date:
    d = clamp(issued.year, issued.month, due_day)
    if d < issued:  # legacy due days 1–4: the month after the issue
        nxt = plus_months(issued.replace(day=1), 1)
        d = clamp(nxt.year, nxt.month, due_day)
    return d


@dataclass(frozen=True)
class Dates:
    due: date
    effective: date
    overdue: date
    suspension: date
    deletion: date


def dates_for(due: date) -> Dates:
    effective = next_business_day(due)
    overdue = next_business_day(effective + DAY)  # settlement_days = 1
    month_end = clamp(due.year, due.month, 31)
    return Dates(due, effective, overdue, max(month_end, overdue), plus_months(due, 1))


def contact_allowed(when) -> bool:
    """RULES.md contact hours for WhatsApp, SMS and social (a time in America/Sao_Paulo)."""
    d, t = when.date(), when.hour * 60 + when.minute
    if d in national_holidays(d.year) or d.weekday() == 6:
        return False
    end = 14 * 60 if d.weekday() == 5 else 20 * 60
    return 8 * 60 <= t < end


# --- the world ---------------------------------------------------------------------------------------

@dataclass
class Account:
    id: str
    due_day: int
    emails: list[str]
    whatsapp: str | None
    social: dict[str, str]
    opt_out: list[str]
    past_delinquencies: int
    habit: str  # punctual, mixed, late, never

    def to_json(self) -> dict:
        raw = {"id": self.id, "company": f"Cliente {self.id} Ltda", "document": "11.222.333/0001-81",
               "emails": self.emails, "due_day": self.due_day}
        if self.whatsapp:
            raw["whatsapp"] = self.whatsapp
        if self.social:
            raw["social"] = self.social
        if self.opt_out:
            raw["opt_out"] = self.opt_out
        if self.past_delinquencies:
            raw["past_delinquencies"] = self.past_delinquencies
        return raw


@dataclass
class Invoice:
    id: str
    account: str
    issued: date
    dates: Dates
    paid: date | None  # the day the customer pays (None: never)
    by_pay: bool  # learned through `notifier pay` (the billing file never learns it)

    @property
    def late(self) -> bool:
        return self.paid is None or self.paid > self.dates.effective

    def known_paid_on(self, day: date) -> bool:
        """The notifier has been told of the payment by the cycle of `day` (the morning after)."""
        return self.paid is not None and self.paid < day

    def to_json(self, day: date) -> dict:
        raw = {"id": self.id, "account": self.account, "amount": f"{100 + sum(map(ord, self.id)) % 400}.90",
               "issued": self.issued.isoformat()}
        if not self.by_pay and self.known_paid_on(day):
            raw["paid"] = self.paid.isoformat()
        return raw


@dataclass
class Hold:
    account: str
    since: date
    until: date
    reason: str
    released: date | None = None

    def active(self, day: date) -> bool:
        end = min(self.until, self.released) if self.released else self.until
        return self.since <= day < end


@dataclass
class World:
    start: date
    end: date
    accounts: dict[str, Account]
    invoices: dict[str, Invoice] = field(default_factory=dict)
    do_not_contact: set[str] = field(default_factory=set)
    holds: list[Hold] = field(default_factory=list)
    escalations: dict[date, list[str]] = field(default_factory=dict)
    contacts: dict[date, list[str]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def generate(cls, seed: int | str, n_accounts: int, start: date, days: int) -> "World":
        rng = random.Random(seed)
        accounts = {}
        for i in range(n_accounts):
            aid = f"c{i:03}"
            legacy = rng.random() < 0.35
            due_day = rng.randint(1, 31) if legacy else 20
            emails = [f"fin@{aid}.com.br"] + ([f"dono@{aid}.com.br"] if rng.random() < 0.3 else [])
            whatsapp = f"+55119{i:08}" if rng.random() < 0.6 else None
            social = {}
            if rng.random() < 0.3:
                social["instagram"] = f"@{aid}"
            if rng.random() < 0.1:
                social["facebook"] = f"{aid}.oficial"
            opt_out = sorted(c for c in ("whatsapp", "social") if rng.random() < 0.08)
            past = rng.choice([0, 0, 0, 1, 3]) if rng.random() < 0.3 else 0
            habit = rng.choices(["punctual", "mixed", "late", "never"], [55, 25, 15, 5])[0]
            accounts[aid] = Account(aid, due_day, emails, whatsapp, social, opt_out, past, habit)
        world = cls(start, start + timedelta(days=days - 1), accounts, rng=rng)
        numbers = [a.whatsapp for a in accounts.values() if a.whatsapp]
        world.do_not_contact = set(rng.sample(numbers, max(1, len(numbers) // 12)))
        world._issue_all(rng)
        world._staff(rng)
        return world

    def _issue_all(self, rng: random.Random) -> None:
        month = self.start.replace(day=1)
        while month <= self.end:
            issued = month.replace(day=5)
            if self.start <= issued <= self.end:
                for acc in self.accounts.values():
                    inv_id = f"{issued:%Y-%m}-{acc.id}"
                    dates = dates_for(due_for(issued, acc.due_day))
                    self.invoices[inv_id] = Invoice(inv_id, acc.id, issued, dates, self._payday(rng, acc, issued, dates),
                                                    by_pay=rng.random() < 0.03)
            month = plus_months(month, 1)

    @staticmethod
    def _payday(rng: random.Random, acc: Account, issued: date, d: Dates) -> date | None:
        weights = {"punctual": (80, 15, 5, 0), "mixed": (45, 10, 40, 5), "late": (10, 5, 70, 15),
                   "never": (0, 0, 10, 90)}[acc.habit]
        kind = rng.choices(["on_time", "effective", "late", "never"], weights)[0]
        if kind == "effective" and d.effective == d.due:
            kind = "on_time"
        if kind == "on_time":
            return issued + timedelta(days=rng.randint(0, (d.due - issued).days))
        if kind == "effective":  # due on a weekend or holiday, paid on the next business day: on time
            return d.effective
        if kind == "late":
            return d.effective + timedelta(days=rng.choice([1, 2, 3, 5, 8, 12, 20, 30, 40]))
        return None

    def _staff(self, rng: random.Random) -> None:
        """Holds, escalations and contacts on random days, for accounts that are late then."""
        days = (self.end - self.start).days
        for _ in range(max(4, len(self.accounts) // 8)):
            day = self.start + timedelta(days=rng.randint(min(10, days), max(min(10, days), days - 20)))
            late = [i for i in self.invoices.values() if i.dates.overdue <= day and not i.known_paid_on(day)
                    and i.dates.deletion > day]
            if not late:
                continue
            inv = rng.choice(late)
            if any(h.account == inv.account and h.since <= day + timedelta(days=40) and day <= h.until + DAY
                   for h in self.holds):
                continue
            hold = Hold(inv.account, day, day + timedelta(days=rng.randint(2, 20)),
                        rng.choice(["promised_payment", "disputed", "negotiating", "other"]))
            if rng.random() < 0.3 and (hold.until - hold.since).days > 2:
                hold.released = hold.since + timedelta(days=rng.randint(1, (hold.until - hold.since).days - 1))
            self.holds.append(hold)
        for target, share in ((self.escalations, 16), (self.contacts, 12)):
            for _ in range(max(3, len(self.accounts) // share)):
                day = self.start + timedelta(days=rng.randint(min(10, days), days))
                late = sorted({i.account for i in self.invoices.values() if i.dates.overdue <= day
                               and not i.known_paid_on(day) and i.dates.deletion > day})
                if late:
                    target.setdefault(day, []).append(rng.choice(late))

    # --- what a day holds ---------------------------------------------------------------------------

    def held(self, account: str, day: date) -> bool:
        return any(h.account == account and h.active(day) for h in self.holds)

    def first_time(self, inv: Invoice) -> bool:
        """RULES.md: late, no earlier invoice of the account late, past_delinquencies 0."""
        if not inv.late or self.accounts[inv.account].past_delinquencies:
            return False
        return not any(o.account == inv.account and o.issued < inv.issued and o.late for o in self.invoices.values())

    def billing(self, day: date) -> dict:
        """What the billing system exports that morning: every account; the invoices issued in the
        last three months, and the older ones it still sees open."""
        recent = day - timedelta(days=92)
        invoices = [i.to_json(day) for i in self.invoices.values() if i.issued <= day
                    and (i.issued >= recent or not (i.known_paid_on(day) or i.by_pay))]
        return {"accounts": [a.to_json() for a in self.accounts.values()], "invoices": invoices}

    def news(self, day: date) -> tuple[bool, list[Invoice]]:
        """(the billing file changed this morning, the payments to record with `pay`)."""
        issued = any(i.issued == day for i in self.invoices.values())
        learned = [i for i in self.invoices.values() if i.paid is not None and i.paid == day - DAY]
        return issued or any(not i.by_pay for i in learned), [i for i in learned if i.by_pay]
