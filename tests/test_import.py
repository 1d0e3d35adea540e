"""Import of billing data: every validation rule, line numbers, JSON = CSV, exact amounts."""
from __future__ import annotations

import csv
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from email_validator import validate_email
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from validate_docbr import CNPJ, CPF

from notifier.billing.calendar import due_date_for
from notifier.billing.documents import is_plain_email, normalize_document, normalize_email, normalize_phone
from notifier.state.importer import (
    ACCOUNT_FIELDS, INVOICE_FIELDS, Batch, InvalidImport, _account, _Builder, _decode, _invoice, _JsonReader,
    _plain_account, _read_plain_json, parse_file,
)
from notifier.billing.models import Account, Invoice

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TODAY = date(2026, 11, 26)


def account(**changes) -> dict:
    base = {
        "id": "acme", "company": "ACME Comércio Ltda", "contact_name": "Maria Souza",
        "document": "11.222.333/0001-81", "domain": "acme.com.br",
        "emails": ["financeiro@acme.com.br", "maria@acme.com.br"], "portal_email": "maria@acme.com.br",
        "whatsapp": "+5511987654321", "social": {"instagram": "@acme"}, "due_day": 20,
        "past_delinquencies": 0, "opt_out": ["whatsapp"],
    }
    return _changed(base, changes)


def invoice(**changes) -> dict:
    base = {
        "id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05",
        "due": "2026-11-20", "paid": None, "payment_url": "https://www.lucanet.com.br/fatura/2026-11-acme",
        "pix_code": "00020126580014br.gov.bcb.pix01366304A1D3",
    }
    return _changed(base, changes)


_DROP = object()


def _changed(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if value is _DROP:
            base.pop(key)
        else:
            base[key] = value
    return base


def write_json(folder: Path, accounts=(), invoices=(), name="billing.json") -> Path:
    path = folder / name
    path.write_text(json.dumps({"accounts": list(accounts), "invoices": list(invoices)}, ensure_ascii=False, indent=2),
                    encoding="utf-8")
    return path


def errors(path: Path, stored: dict | None = None, today: date | None = TODAY) -> list[str]:
    with pytest.raises(InvalidImport) as caught:
        parse_file(path, stored or {}, today=today)
    return caught.value.errors


# --- one test per rule ---------------------------------------------------------------------------

ACCOUNT_RULES = [
    # (change to the valid account, field in the message, start of the reason)
    ({"id": _DROP}, "id", "required"),
    ({"company": ""}, "company", "required"),
    ({"company": 123}, "company", "must be text, not number 123"),
    ({"document": _DROP}, "document", "required"),
    ({"document": "11.222.333/0001-82"}, "document", "not a valid CNPJ (check digits do not match): '11.222.333/0001-82'"),
    ({"document": "12.ABC.345/01DE-36"}, "document", "not a valid CNPJ (check digits do not match)"),
    ({"document": "111.444.777-36"}, "document", "not a valid CPF (check digits do not match)"),
    ({"document": "111.111.111-11"}, "document", "not a valid CPF"),
    ({"document": "35"}, "document", "not a CPF (000.000.000-00) nor a CNPJ (00.000.000/0000-00): '35'"),
    ({"document": "11.222.333/0001/81"}, "document", "not a CPF (000.000.000-00) nor a CNPJ"),
    ({"emails": _DROP, "portal_email": _DROP}, "emails", "required: one or two billing e-mails"),
    ({"emails": [], "portal_email": _DROP}, "emails", "required: one or two billing e-mails"),
    ({"emails": "financeiro@acme.com.br", "portal_email": _DROP}, "emails", "must be a list, not text"),
    ({"emails": ["a@acme.com.br", "b@acme.com.br", "c@acme.com.br"], "portal_email": _DROP}, "emails", "at most 2 billing e-mails, not 3"),
    ({"emails": ["financeiro@acme.com.br", "x@"], "portal_email": _DROP}, "emails[1]", "not a valid e-mail address: 'x@'"),
    ({"emails": ["financeiro@acme.com.br", 7], "portal_email": _DROP}, "emails[1]", "must be an e-mail address, not number 7"),
    ({"emails": ["financeiro@acme.com.br", "Financeiro@ACME.com.br"], "portal_email": _DROP}, "emails[1]", "appears twice"),
    ({"emails": ["financeiro@acme.com.br", "joao@acme.test"], "portal_email": _DROP}, "emails[1]", "not a valid e-mail address"),
    ({"portal_email": "diretoria@acme.com.br"}, "portal_email", "must be one of the billing e-mails (emails)"),
    ({"portal_email": "maria@"}, "portal_email", "not a valid e-mail address"),
    ({"whatsapp": "11987654321"}, "whatsapp", "not a phone number in E.164 format"),
    ({"whatsapp": "+55 11 98765-432a"}, "whatsapp", "not a phone number in E.164 format"),
    ({"whatsapp": "+5520987654321"}, "whatsapp", "not a Brazilian area code (DDD) in use: 20"),
    ({"whatsapp": "+55119876543"}, "whatsapp", "after +55 and the DDD, a Brazilian number has 9 digits"),
    ({"whatsapp": "+5511887654321"}, "whatsapp", "after +55 and the DDD"),
    ({"whatsapp": "+551198765432100"}, "whatsapp", "after +55 and the DDD"),
    ({"due_day": 0}, "due_day", "must be 1..31, not 0"),
    ({"due_day": 32}, "due_day", "must be 1..31, not 32"),
    ({"due_day": "20"}, "due_day", "must be a whole number, not text '20'"),
    ({"due_day": 20.0}, "due_day", "must be a whole number, not number 20.0"),
    ({"due_day": True}, "due_day", "must be a whole number, not true/false (true)"),
    ({"past_delinquencies": -1}, "past_delinquencies", "must be 0..999, not -1"),
    ({"past_delinquencies": "two"}, "past_delinquencies", "must be a whole number"),
    ({"opt_out": ["email"]}, "opt_out[0]", "e-mail is the contractual channel and cannot be opted out of"),
    ({"opt_out": ["whatsapp", "staff"]}, "opt_out[1]", "staff is the company's internal channel"),
    ({"opt_out": ["fax"]}, "opt_out[0]", "unknown channel 'fax' (allowed: whatsapp, sms, social)"),
    ({"opt_out": "whatsapp"}, "opt_out", "must be a list, not text 'whatsapp'"),
    ({"social": "@acme"}, "social", "must be an object of network: handle"),
    ({"social": {"instagram": ""}}, "social.instagram", "must be a handle or an apprise URL"),
    ({"social": {"Insta Gram": "@acme"}}, "social.Insta Gram", "a network is named in lower-case letters"),
    ({"domain": "https://acme.com.br"}, "domain", "not a domain name (like empresa.com.br)"),
    ({"emial": "x"}, "emial", "unknown field (did you mean 'emails'?)"),
    ({"zzz": 1}, "zzz", "unknown field (known: id, company"),
    # Limits on imported text (issue 6, point 22)
    ({"company": "ACME\x1b]0;pwned\x07"}, "company", "contains a control character (U+001B) at position 5"),
    ({"company": "A" * 201}, "company", "too long: 201 characters (at most 200)"),
    ({"company": "ACME\u2028Ltda"}, "company", "contains a control character (U+2028)"),
    ({"contact_name": "Maria\nBcc: x@evil.com"}, "contact_name", "contains a control character (U+000A) at position 6"),
    ({"id": "acme\x00"}, "id", "contains a control character (U+0000) at position 5"),
    ({"id": "a" * 101}, "id", "too long: 101 characters (at most 100)"),
    ({"domain": "acme.com.br\x07"}, "domain", "contains a control character (U+0007)"),
    ({"emails": ["fin\x07@acme.com.br"], "portal_email": _DROP}, "emails[0]", "contains a control character (U+0007)"),
    ({"social": {"instagram": "@acme\r\nBcc: x"}}, "social.instagram", "contains a control character (U+000D)"),
    ({"social": {"instagram": "@" + "a" * 512}}, "social.instagram", "too long: 513 characters (at most 512)"),
    ({"whatsapp": "+5５11987654321"}, "whatsapp", "not a phone number in E.164 format"),
    ({"document": "11.222.333/0001-8１"}, "document", "not a CPF"),
    ({"document": "1" * 200}, "document", "too long: 200 characters (at most 30)"),
    ({"past_delinquencies": 10**30}, "past_delinquencies", "must be 0..999, not a number too large"),
    ({"past_delinquencies": 1000}, "past_delinquencies", "must be 0..999, not 1000"),
    ({"\x1b[2Jbad": 1}, "'\\x1b[2Jbad'", "unknown field"),  # quoted: no escape reaches the terminal
]


@pytest.mark.parametrize("change, field, reason", ACCOUNT_RULES, ids=[f"{r[1]}:{r[2][:30]}" for r in ACCOUNT_RULES])
def test_account_rule(tmp_path, change, field, reason):
    path = write_json(tmp_path, [account(**change)])
    found = errors(path)
    assert len(found) == 1, found
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: accounts\[0\]\.{re.escape(field)}: {re.escape(reason)}.*", found[0]), found


INVOICE_RULES = [
    ({"id": _DROP}, "id", "required"),
    ({"account": None}, "account", "required"),
    ({"amount": _DROP}, "amount", "required"),
    ({"amount": "  "}, "amount", "required"),
    ({"issued": _DROP}, "issued", "required"),
    ({"account": "nobody"}, "account", "unknown account 'nobody' (not in this import nor in the store)"),
    ({"amount": "1,5"}, "amount", "not a decimal number (write 1234.56): '1,5'"),
    ({"amount": "1.234,56"}, "amount", "not a decimal number"),
    ({"amount": "R$ 10"}, "amount", "not a decimal number"),
    ({"amount": "1e3"}, "amount", "not a decimal number"),
    ({"amount": "-10.00"}, "amount", "must not be negative: -10.00"),
    ({"amount": "10.001"}, "amount", "more than 2 decimal places: 10.001"),
    ({"amount": 10.001}, "amount", "more than 2 decimal places: 10.001"),
    ({"amount": -5}, "amount", "must not be negative"),
    ({"amount": True}, "amount", "must be a decimal number (1234.56), not true/false (true)"),
    ({"amount": ["1"]}, "amount", "must be a decimal number (1234.56), not a list"),
    ({"issued": "05/11/2026"}, "issued", "not a date in ISO format (YYYY-MM-DD): '05/11/2026'"),
    ({"issued": "20261105"}, "issued", "not a date in ISO format"),
    ({"issued": "2026-02-30"}, "issued", "no such date: '2026-02-30'"),
    ({"issued": "1926-11-05"}, "issued", "implausible year: '1926-11-05'"),
    ({"issued": 20261105}, "issued", "must be a date as text (YYYY-MM-DD), not number 20261105"),
    ({"due": "2026-11-04"}, "due", "before the issue date 2026-11-05: 2026-11-04"),
    ({"paid": "2026-11-04"}, "paid", "before the issue date 2026-11-05: 2026-11-04"),
    ({"paid": "2026-11-27"}, "paid", "in the future (today is 2026-11-26): 2026-11-27"),
    ({"paid": "2206-11-20"}, "paid", "implausible year"),
    ({"payment_url": "www.lucanet.com.br/fatura/1"}, "payment_url", "not an http(s) URL"),
    ({"payment_url": "https://www.lucanet.com.br/fatura 1"}, "payment_url", "not an http(s) URL"),
    ({"pix_code": "pix-123"}, "pix_code", "not a Pix copy-and-paste code (those start with 000201)"),
    # The last four hex digits are a CRC16 of the rest: a code mistyped or cut fails in the bank app.
    ({"pix_code": "00020126580014br.gov.bcb.pix01366304A1D4"}, "pix_code",
     "the Pix code's check digits (CRC16) do not match: it ends in 'A1D4', expected 'A1D3'"),
    ({"pix_code": "00020126580014br.gov.bcb.pix0136"}, "pix_code", "not a complete Pix code"),
    ({"amout": "1.00"}, "amout", "unknown field (did you mean 'amount'?)"),
    # Limits on imported text and ASCII digits (issue 6, point 22)
    ({"amount": "１２３"}, "amount", "not a decimal number (write 1234.56): '１２３'"),
    ({"amount": "١٢٣.٤٥"}, "amount", "not a decimal number"),
    ({"amount": "1000000000.00"}, "amount", "more than 999999999.99: 1000000000.00"),
    ({"amount": "1" * 40}, "amount", "not a decimal number (write 1234.56): '1111"),
    ({"amount": 10**30}, "amount", "must be a decimal number (1234.56), not a number too large"),
    ({"issued": "２０２６-11-05"}, "issued", "not a date in ISO format"),
    ({"id": "2026-11\nBcc: x@evil.com"}, "id", "contains a control character (U+000A) at position 8"),
    ({"pix_code": "000201abc\r\nBcc: x"}, "pix_code", "contains a control character (U+000D)"),
    ({"pix_code": "000201" + "9" * 507}, "pix_code", "too long: 513 characters (at most 512)"),
    ({"payment_url": "https://pague.com.br/" + "a" * 2040}, "payment_url", "too long: 2061 characters (at most 2048)"),
    ({"payment_url": "https://pague.com.br/\x1b[2J"}, "payment_url", "contains a control character (U+001B)"),
]


@pytest.mark.parametrize("change, field, reason", INVOICE_RULES, ids=[f"{r[1]}:{r[2][:30]}" for r in INVOICE_RULES])
def test_invoice_rule(tmp_path, change, field, reason):
    path = write_json(tmp_path, [account()], [invoice(**change)])
    found = errors(path)
    assert len(found) == 1, found
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: invoices\[0\]\.{re.escape(field)}: {re.escape(reason)}.*", found[0]), found


def test_duplicate_ids_in_one_file_name_the_first_line(tmp_path):
    path = tmp_path / "billing.json"
    path.write_text(
        '{"accounts": [\n'
        + json.dumps(account()) + ",\n"
        + json.dumps(account(company="Outra")) + "\n"
        "], \"invoices\": [\n"
        + json.dumps(invoice()) + ",\n"
        + json.dumps(invoice(amount="1.00")) + "\n]}\n", encoding="utf-8")
    assert errors(path) == [
        f"{path}:3: accounts[1].id: duplicate id 'acme' (first on line 2)",
        f"{path}:6: invoices[1].id: duplicate id '2026-11-acme' (first on line 5)",
    ]


def test_records_that_are_not_objects_and_unknown_sections(tmp_path):
    path = tmp_path / "billing.json"
    path.write_text('{"accounts": ["acme", ' + json.dumps(account()) + '],\n"invoices": [' + json.dumps(invoice())
                    + ', 5],\n"clients": []}', encoding="utf-8")
    assert errors(path) == [
        f"{path}:1: accounts[0]: must be an object, not text 'acme'",
        f"{path}:2: invoices[1]: must be an object, not number 5",
        f"{path}:3: clients: unknown field (expected accounts and invoices)",
    ]


def test_the_same_section_twice(tmp_path):
    path = tmp_path / "billing.json"
    path.write_text('{"accounts": [' + json.dumps(account()) + '], "invoices": [' + json.dumps(invoice())
                    + '], "invoices": [' + json.dumps(invoice(id="other")) + ']}', encoding="utf-8")
    assert errors(path) == [f"{path}:1: invoices: appears twice in the file"]


@pytest.mark.parametrize("text, line, reason", [
    ('{"accounts": [\n{"id": "a",}\n]}', 2, "Expecting property name enclosed in double quotes"),
    ('{"accounts": [\n{"id": "a"}\n\n{"id": "b"}]}', 4, "expected ',' or ']' after a record"),
    ('{"accounts": [{"id": "a"},\n]}', 2, "a ',' before ']'"),
    ('[{"id": "a"}]', 1, "the file must hold one object"),
    ('{"accounts": []}\n{}', 2, "extra data after the end of the object"),
    ('{"accounts": [', 1, "Expecting value"),
    ('{"invoices": [\n{"id": "a"},\n{"id": "b"}\n{"id": "c"}]}', 4, "expected ',' or ']' after a record"),
    ('{"invoices": [\n{"id": "a"},\n{"id": "b" "x"}]}', 3, "Expecting ',' delimiter"),
    ('', 1, "the file must hold one object"),
])
def test_json_syntax_errors_give_the_line(tmp_path, text, line, reason):
    path = tmp_path / "billing.json"
    path.write_text(text, encoding="utf-8")
    found = errors(path)
    assert found[-1].startswith(f"{path}:{line}: not valid JSON: {reason}"), found


def test_a_file_not_in_utf8_is_refused_with_its_line(tmp_path):
    path = tmp_path / "billing.json"
    path.write_bytes('{"accounts": [\n{"company": "Padaria São João"}]}'.encode("latin-1"))
    assert errors(path) == [f"{path}:2: not UTF-8 text: save the file as UTF-8"]


def test_missing_file_and_unknown_kind(tmp_path):
    assert errors(tmp_path / "nothere.json") == [f"{tmp_path / 'nothere.json'}: cannot read: No such file or directory"]
    (tmp_path / "billing.xlsx").write_bytes(b"PK")
    assert "unknown kind of file" in errors(tmp_path / "billing.xlsx")[0]


# --- many errors: all reported, each on its own line ---------------------------------------------

MANY_ERRORS = """\
{
  "invoices": [
    {
      "id": "2026-11-ghost",
      "account": "ghost",
      "amount": "10.00",
      "issued": "2026-11-05"
    },
    {
      "id": "2026-11-acme",
      "account": "acme",
      "amount": "1,5",
      "issued": "2026-11-31",
      "paid": "2026-11-01"
    }
  ],
  "accounts": [
    {
      "id": "acme",
      "company": "ACME",
      "document": "11.222.333/0001-81",
      "emails": [
        "financeiro@acme.com.br",
        "x@"
      ],
      "whatsapp": "+55 11 1234"
    },
    {"id": "beta", "company": "Beta", "document": "111.444.777-35", "emails": ["a@beta.com.br"], "due_dya": 5},
    {
      "company": "",
      "document": "123",
      "emails": [],
      "social": {"instagram": "@gama", "tiktok": ""},
      "opt_out": ["email"]
    }
  ]
}
"""


def test_a_file_with_many_errors_reports_them_all_with_their_lines(tmp_path):
    path = tmp_path / "billing.json"
    path.write_text(MANY_ERRORS, encoding="utf-8")
    assert errors(path) == [
        f"{path}:12: invoices[1].amount: not a decimal number (write 1234.56): '1,5'",
        f"{path}:13: invoices[1].issued: no such date: '2026-11-31'",
        f"{path}:24: accounts[0].emails[1]: not a valid e-mail address: 'x@' (There must be something after the @-sign.)",
        f"{path}:26: accounts[0].whatsapp: after +55 and the DDD, a Brazilian number has 9 digits starting with 9 "
        "(mobile) or 8 digits starting with 2-5 (landline): '+55 11 1234'",
        f"{path}:28: accounts[1].due_dya: unknown field (did you mean 'due_day'?)",
        f"{path}:29: accounts[2].id: required",
        f"{path}:30: accounts[2].company: required",
        f"{path}:31: accounts[2].document: not a CPF (000.000.000-00) nor a CNPJ (00.000.000/0000-00): '123'",
        f"{path}:32: accounts[2].emails: required: one or two billing e-mails",
        f"{path}:33: accounts[2].social.tiktok: must be a handle or an apprise URL, not text ''",
        f"{path}:34: accounts[2].opt_out[0]: e-mail is the contractual channel and cannot be opted out of",
        # Invoices listed before the accounts: their account is checked once every account is read.
        f"{path}:5: invoices[0].account: unknown account 'ghost' (not in this import nor in the store)",
    ]


def test_the_report_is_capped_but_every_error_is_kept(tmp_path):
    path = write_json(tmp_path, [account()], [invoice(id=f"i{n}", amount="x") for n in range(250)])
    with pytest.raises(InvalidImport) as caught:
        parse_file(path, {})
    assert len(caught.value.errors) == 250
    report = str(caught.value).splitlines()
    assert len(report) == 201 and report[-1] == "... and 50 more errors"
    assert report[0] == caught.value.errors[0]


# --- what is accepted, and how it is stored -------------------------------------------------------

def test_a_valid_record_becomes_the_model(tmp_path):
    path = write_json(tmp_path, [account()], [invoice(paid="2026-11-19")])
    assert parse_file(path, {}, today=TODAY) == Batch(
        accounts=[Account(
            id="acme", company="ACME Comércio Ltda", document="11.222.333/0001-81",
            emails=("financeiro@acme.com.br", "maria@acme.com.br"), contact_name="Maria Souza",
            domain="acme.com.br", portal_email="maria@acme.com.br", whatsapp="+5511987654321",
            social=(("instagram", "@acme"),), due_day=20, past_delinquencies=0, opt_out=frozenset({"whatsapp"}),
        )],
        invoices=[Invoice(
            id="2026-11-acme", account="acme", amount=Decimal("149.90"), issued=date(2026, 11, 5),
            due=date(2026, 11, 20), paid=date(2026, 11, 19),
            payment_url="https://www.lucanet.com.br/fatura/2026-11-acme", pix_code="00020126580014br.gov.bcb.pix01366304A1D3",
        )],
    )


def test_values_are_stored_in_one_canonical_form(tmp_path):
    path = write_json(tmp_path, [account(
        id=" acme ", document="11222333000181", emails=["Financeiro@ACME.COM.BR"], portal_email="financeiro@acme.com.br",
        whatsapp="+55 (11) 98765-4321", domain="ACME.com.br", due_day=None, past_delinquencies="", opt_out=[], social={},
        contact_name="",
    )])
    [acc] = parse_file(path, {}).accounts
    assert (acc.id, acc.document, acc.emails, acc.portal_email, acc.whatsapp, acc.domain) == (
        "acme", "11.222.333/0001-81", ("Financeiro@acme.com.br",), "Financeiro@acme.com.br", "+5511987654321", "acme.com.br")
    # Empty values are absent values: defaults apply.
    assert (acc.due_day, acc.past_delinquencies, acc.opt_out, acc.social, acc.contact_name) == (20, 0, frozenset(), (), "")


@pytest.mark.parametrize("document, stored", [
    ("12.ABC.345/01DE-35", "12.ABC.345/01DE-35"),  # the alphanumeric CNPJ, from July 2026
    ("12abc34501de35", "12.ABC.345/01DE-35"),
    ("111.444.777-35", "111.444.777-35"),
    ("11144477735", "111.444.777-35"),
])
def test_documents_formatted_or_bare(document, stored):
    assert normalize_document(document) == stored


def test_phones_outside_brazil_only_need_e164():
    assert normalize_phone("+351 912 345 678") == "+351912345678"
    assert normalize_phone("+553132456789") == "+553132456789"  # a landline: WhatsApp Business runs there too


def test_amounts_are_exact_decimals_from_text_and_from_json_numbers(tmp_path):
    path = tmp_path / "billing.json"
    path.write_text(
        '{"accounts": [' + json.dumps(account()) + '], "invoices": ['
        '{"id": "a", "account": "acme", "amount": "0.10", "issued": "2026-11-05"},'
        '{"id": "b", "account": "acme", "amount": 0.20, "issued": "2026-11-05"},'
        '{"id": "c", "account": "acme", "amount": 150, "issued": "2026-11-05"}]}', encoding="utf-8")
    a, b, c = parse_file(path, {}).invoices
    assert all(type(x.amount) is Decimal for x in (a, b, c))
    assert a.amount + b.amount == Decimal("0.30")
    assert (str(a.amount), str(b.amount), str(c.amount)) == ("0.10", "0.20", "150")


def test_missing_due_comes_from_the_accounts_due_day(tmp_path):
    path = write_json(tmp_path, [account(due_day=3)], [
        invoice(id="a", due=_DROP),
        invoice(id="b", due=_DROP, issued="2026-02-01", account="legacy"),
    ])
    stored = {"legacy": Account(id="legacy", company="L", document="111.444.777-35", emails=("l@l.com.br",), due_day=31)}
    a, b = parse_file(path, stored).invoices
    assert a.due == date(2026, 12, 3)  # a legacy day 1-4 falls in the month after the issue
    assert b.due == date(2026, 2, 28)  # an invoice of an account already in the store
    assert b.account == "legacy"


def test_the_files_account_wins_over_the_stored_one_even_when_listed_after_its_invoices(tmp_path):
    path = tmp_path / "billing.json"
    path.write_text(json.dumps({"invoices": [invoice(due=_DROP)], "accounts": [account(due_day=10)]}), encoding="utf-8")
    stored = {"acme": Account(id="acme", company="A", document="111.444.777-35", emails=("a@a.com.br",), due_day=28)}
    [inv] = parse_file(path, stored).invoices
    assert inv.due == date(2026, 11, 10)


def test_an_invoice_may_belong_to_a_stored_account_only(tmp_path):
    path = write_json(tmp_path, [], [invoice()])
    stored = {"acme": Account(id="acme", company="A", document="111.444.777-35", emails=("a@a.com.br",))}
    assert [i.id for i in parse_file(path, stored).invoices] == ["2026-11-acme"]
    assert "unknown account 'acme'" in errors(path, {})[0]


def test_an_invalid_account_does_not_also_make_its_invoices_unknown(tmp_path):
    path = write_json(tmp_path, [account(document="1")], [invoice()])
    assert len(errors(path)) == 1


def test_a_file_with_only_accounts_or_nothing(tmp_path):
    path = tmp_path / "billing.json"
    path.write_text('{}', encoding="utf-8")
    assert parse_file(path, {}) == Batch([], [])
    path.write_text('\ufeff{"accounts": [' + json.dumps(account()) + ']}', encoding="utf-8")  # a BOM, as Notepad writes
    assert len(parse_file(path, {}).accounts) == 1


# --- the fast path accepts nothing the full checks reject ----------------------------------------

# Values the full checks accept, and values of every kind (good and bad) to put in their place.
_GOOD = {
    "id": ["i1"], "account": ["acme"], "amount": ["149.90", "0.10", " 5.00"], "issued": ["2026-11-05"],
    "due": ["2026-11-20", "2026-11-05", None, _DROP], "paid": ["2026-11-19", None, _DROP],
    "payment_url": ["https://pay.example.com.br/x", None, _DROP], "pix_code": ["00020126580014br.gov.bcb.pix01366304A1D3", None, _DROP],
}
_ANY = {
    "id": ["i1", " i1", "", None, 5, ["x"]],
    "account": ["acme", "nobody", "", None, 1, ["acme"]],
    "amount": ["149.90", "0.10", "1,5", "-1.00", "1.001", " 5.00", "", None, Decimal("149.90"), 150, True],
    "issued": ["2026-11-05", "2026-02-30", "05/11/2026", "1999-12-31", "2026-11-27", "", None, 20261105],
    "due": ["2026-11-20", "2026-11-04", "2026-11-05", "", None, "x", ["2026-11-20"]],
    "paid": ["2026-11-19", "2026-11-27", "2026-11-04", "1999-12-31", "", None, "bad", 1],
    "payment_url": ["https://pay.example.com.br/x", "http://a.b/c", "ftp://a", "https://a b", "", None, 7],
    "pix_code": ["00020126580014br.gov.bcb.pix01366304A1D3", "00020126580014br.gov.bcb.pix01366304A1D4", "000201abc",
                 " 00020126580014br.gov.bcb.pix01366304A1D3", "123", "", None, 1],
    "extra": [None],
}
_changes = st.lists(st.sampled_from(sorted(_ANY)).flatmap(
    lambda key: st.tuples(st.just(key), st.sampled_from(_ANY[key] + [_DROP]))), max_size=2)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.fixed_dictionaries({key: st.sampled_from(values) for key, values in _GOOD.items()}), _changes)
def test_fast_path_agrees_with_the_full_checks(good, changes):
    raw = {k: v for k, v in good.items() if v is not _DROP}
    for key, value in changes:
        if value is _DROP:
            raw.pop(key, None)
        else:
            raw[key] = value
    builder = _Builder({}, TODAY)
    builder.add_account(account(), _Where)
    # The fast path only knows values the full checks accepted before: teach it the valid ones.
    builder.add_invoice(invoice(id="seed", issued="2026-11-05", due="2026-11-20", paid="2026-11-19",
                                amount="149.90"), _Where)
    for amount in ("0.10", " 5.00"):
        builder.add_invoice(invoice(id=f"seed{amount}", amount=amount), _Where)
    for day in ("2026-11-04", "2026-11-27", "1999-12-31"):
        builder.add_invoice(invoice(id=f"seed{day}", issued="2026-11-01", due=_DROP, paid=_DROP) | {"due": day}, _Where)
    fast = builder.plain_invoice(raw)
    assert fast is not None or changes, "the fast path must take a plain valid invoice"
    if fast is not None:
        problems = []
        full = _invoice(raw, problems, builder.dates, builder.amounts, TODAY)
        assert problems == [] and full is not None, (raw, problems)
        assert (fast.id, fast.account, fast.amount, fast.issued, fast.paid, fast.payment_url, fast.pix_code) == (
            full.id, full.account, full.amount, full.issued, full.paid, full.payment_url, full.pix_code)
        assert fast.due == (full.due or due_date_for(full.issued, 20))


class _Where:
    file, line = "t.json", 1

    @staticmethod
    def locate(field):
        return 1, field


# --- the JSON fast path (msgspec, a field at a time) gives what the full reader gives --------------

def _both_paths(path: Path, stored: dict | None = None, today: date | None = TODAY, payments: dict | None = None):
    """(the fast path's Batch or None when it declines, the full reader's Batch or its errors)."""
    data = path.read_bytes()
    fast = _read_plain_json(path, data, _Builder(stored or {}, today, payments))
    builder = _Builder(stored or {}, today, payments)
    builder.files.append(path)
    try:
        _JsonReader(path, _decode(path, data), builder).read()
        full = builder.finish()
    except InvalidImport as exc:
        full = exc.errors
    return fast, full


_ACCOUNT_ANY = {
    "id": ["acme", " acme", "", None, 5],
    "company": ["ACME", "A\x1bB", "a" * 201, "", "ACME\u00a0Ltda", " ACME "],
    "document": ["11.222.333/0001-81", "11.222.333/0001-82", "111.444.777-35", "11222333000181"],
    "domain": ["ACME.com.br", "acme", "", None],
    "emails": [["financeiro@acme.com.br"], ["a@acme.com.br", "A@acme.com.br"], [], ["x"], "a@acme.com.br",
               ["maria@acme.com.br", "Postmaster@acme.com.br"]],
    "portal_email": ["maria@acme.com.br", "MARIA@acme.com.br", "outro@acme.com.br", "", None],
    "whatsapp": ["+55 (11) 98765-4321", "+5500987654321", "", None],
    "social": [{"instagram": "@acme"}, {"Insta": "@a"}, {"x": ""}, {}, None, "acme"],
    "due_day": [1, 31, 0, 32, None, 20.0, True, "20"],
    "past_delinquencies": [0, 999, 1000, -1, None],
    "opt_out": [["whatsapp"], ["email"], ["fax"], [], None, "whatsapp"],
}
_layouts = st.sampled_from([{"indent": 2}, {"separators": (",", ":")}, {}])


_ANY_JSON = {key: [float(v) if isinstance(v, Decimal) else v for v in values] for key, values in _ANY.items()}


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(sorted(_ANY_JSON)).flatmap(
           lambda key: st.tuples(st.just(key), st.sampled_from(_ANY_JSON[key] + [_DROP]))), max_size=2),
       st.lists(st.sampled_from(sorted(_ACCOUNT_ANY)).flatmap(
           lambda key: st.tuples(st.just(key), st.sampled_from(_ACCOUNT_ANY[key] + [_DROP]))), max_size=2),
       st.booleans(), _layouts)
def test_the_fast_path_gives_what_the_full_reader_gives(tmp_path_factory, invoice_changes, account_changes,
                                                          stored_account, layout):
    """Every record checked by both readers: the fast one may decline (then the full one decides),
    but what it accepts is exactly the full reader's Batch."""
    acme = account()
    for key, value in account_changes:
        acme.pop(key, None) if value is _DROP else acme.__setitem__(key, value)
    changed = invoice(id="i2")
    for key, value in invoice_changes:
        changed.pop(key, None) if value is _DROP else changed.__setitem__(key, value)
    path = tmp_path_factory.mktemp("fast") / "billing.json"
    records = [invoice(id="i1"), changed, invoice(id="i3", due=_DROP, paid="2026-11-21", pix_code=None)]
    path.write_text(json.dumps({"accounts": [acme], "invoices": records}, ensure_ascii=False, **layout), encoding="utf-8")
    stored = {"acme": Account("acme", "Old", "11.222.333/0001-81", ("a@acme.com.br",), due_day=10)} if stored_account else {}
    fast, full = _both_paths(path, stored)
    if fast is not None:
        assert fast == full
    if not invoice_changes and not account_changes:
        assert fast is not None, "the fast path must take a plain valid file"


_ACCOUNT_MORE = {**_ACCOUNT_ANY,
                 "emails": _ACCOUNT_ANY["emails"] + [["maria@acme.com.br"], ["Maria@acme.com.br", "financeiro@acme.com.br"]],
                 "portal_email": _ACCOUNT_ANY["portal_email"] + ["Maria@Acme.com.br", " maria@acme.com.br"],
                 "contact_name": ["", None, " Maria", "Maria\u00a0Souza"], "opt_out": _ACCOUNT_ANY["opt_out"] + [[" sms"], ["sms", "sms"]]}


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(sorted(_ACCOUNT_MORE)).flatmap(
    lambda key: st.tuples(st.just(key), st.sampled_from(_ACCOUNT_MORE[key] + [_DROP]))), max_size=4))
@example([("emails", ["a@acme.com.br", "A@acme.com.br"]), ("portal_email", _DROP)])
@example([("portal_email", "outro@acme.com.br")])
@example([("emails", ["maria@acme.com.br"]), ("portal_email", "MARIA@acme.com.br")])
def test_the_plain_account_shortcut_gives_what_the_full_checks_give(changes):
    """The fast path's shortcut for a usual account record takes it only as `_account` would:
    the same Account, or it declines (and `_account` decides, with its messages)."""
    raw = account()
    for key, value in changes:
        raw.pop(key, None) if value is _DROP else raw.__setitem__(key, value)
    problems: list = []
    full = _account(raw, problems)
    fast = _plain_account(raw)
    assert fast is None or (fast == full and not problems), (fast, full, problems)
    if not changes:
        assert fast is not None, "the shortcut must take a usual record"


def test_the_fast_path_reads_a_big_file_in_chunks_as_the_full_reader_does(tmp_path):
    # 2,000 invoices, about 400 KB: several chunks, cut between records in both usual layouts.
    records = [invoice(id=f"2026-{i:05d}", due=None if i % 7 == 0 else "2026-11-20",
                       paid="2026-11-19" if i % 2 else None, pix_code=None if i % 3 else invoice()["pix_code"])
               for i in range(2000)]
    for layout in ({"indent": 2}, {}):
        path = tmp_path / "big.json"
        path.write_text(json.dumps({"invoices": records, "accounts": [account()]}, **layout), encoding="utf-8")
        fast, full = _both_paths(path)
        assert fast is not None and fast == full and len(fast.invoices) == 2000
    # The generator's layout: one record a line, the comma that separates them at the line's start.
    path.write_text('{"accounts": [' + json.dumps(account()) + '],\n"invoices": [\n'
                    + "\n,".join(map(json.dumps, records)) + "\n]}\n", encoding="utf-8")
    fast, full = _both_paths(path)
    assert fast is not None and fast == full
    # One bad record far into the file: the fast path declines, the full reader names its line.
    records[1500]["amount"] = "1,5"
    path.write_text('{"accounts": [' + json.dumps(account()) + '],\n"invoices": [\n'
                    + "\n,".join(map(json.dumps, records)) + "\n]}\n", encoding="utf-8")
    fast, full = _both_paths(path)
    assert fast is None and full == [f"{path}:1503: invoices[1500].amount: not a decimal number (write 1234.56): '1,5'"]


@pytest.mark.parametrize("text", [
    '{"accounts": [], "accounts": [ACME]}', '{"accounts": [ACME], "accounts": []}',
    '{"invoices": [], "accounts": [ACME], "invoices": []}', '{"accounts": [ACME], "other": 1}',
    '{"accounts": [ACME], "invoices": [], "invoices": [{"social": {"invoices": []}}]}',
])
def test_the_fast_path_leaves_a_key_given_twice_to_the_full_reader(tmp_path, text):
    path = tmp_path / "billing.json"
    path.write_text(text.replace("ACME", json.dumps(account())), encoding="utf-8")
    fast, full = _both_paths(path)
    assert fast is None and isinstance(full, list) and full


# --- CSV -----------------------------------------------------------------------------------------

def test_examples_in_json_and_csv_are_the_same_batch():
    from_json = parse_file(EXAMPLES / "billing.json", {}, today=TODAY)
    assert parse_file(EXAMPLES / "accounts.csv", {}, today=TODAY) == from_json
    assert parse_file(EXAMPLES / "invoices.csv", {}, today=TODAY) == from_json
    assert parse_file(EXAMPLES, {}, today=TODAY) == from_json


def test_examples_cover_what_they_are_there_to_show():
    batch = parse_file(EXAMPLES / "billing.json", {}, today=TODAY)
    accounts = {a.id: a for a in batch.accounts}
    assert 8 <= len(accounts) <= 12
    assert {a.due_day for a in accounts.values()} >= {10, 20, 28}
    assert {len(a.emails) for a in accounts.values()} == {1, 2}
    assert {a.has_portal_access for a in accounts.values()} == {True, False}
    assert any(a.opt_out == {"whatsapp"} for a in accounts.values())
    assert any(a.past_delinquencies == 2 for a in accounts.values())
    assert any(len(a.document) == 14 for a in accounts.values())  # a CPF
    assert any(re.search("[A-Z]", a.document) for a in accounts.values())  # an alphanumeric CNPJ
    assert any(h.startswith("tgram://") for a in accounts.values() for _, h in a.social)
    assert any(n == "instagram" for a in accounts.values() for n, _ in a.social)
    assert any(c in a.company for a in accounts.values() for c in "ãçéê")
    open_by_account = {}
    for inv in batch.invoices:
        if inv.paid is None:
            open_by_account.setdefault(inv.account, []).append(inv.issued.month)
    assert [10, 11] in open_by_account.values()
    assert any(i.paid is not None and i.paid > i.due for i in batch.invoices)  # paid late...
    assert any(i.paid is not None and i.paid <= i.due for i in batch.invoices)  # ...and on time


def write_csv(folder: Path, name: str, header, rows) -> Path:
    path = folder / name
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _csv_account(**changes) -> list[str]:
    values = {"id": "acme", "company": "ACME Comércio Ltda", "document": "11.222.333/0001-81",
              "emails": "financeiro@acme.com.br;maria@acme.com.br", "portal_email": "maria@acme.com.br",
              "social": "instagram=@acme;telegram=tgram://1:A/2", "due_day": "20", "opt_out": "whatsapp;sms"}
    values.update(changes)
    return [values.get(f, "") for f in ACCOUNT_FIELDS]


def test_csv_cells_become_lists_tables_and_numbers(tmp_path):
    write_csv(tmp_path, "accounts.csv", ACCOUNT_FIELDS, [_csv_account()])
    [acc] = parse_file(tmp_path, {}).accounts
    assert acc.emails == ("financeiro@acme.com.br", "maria@acme.com.br")
    assert acc.social == (("instagram", "@acme"), ("telegram", "tgram://1:A/2"))
    assert acc.opt_out == {"whatsapp", "sms"} and acc.due_day == 20 and acc.whatsapp is None


def test_csv_errors_give_the_csv_line_and_column(tmp_path):
    write_csv(tmp_path, "accounts.csv", ACCOUNT_FIELDS, [
        _csv_account(),
        _csv_account(id="beta", company="Beta\nFilial Centro", due_day="2x"),  # a quoted cell over two lines
        _csv_account(id="gama", social="instagram", past_delinquencies="-1"),
    ])
    invoices = write_csv(tmp_path, "invoices.csv", INVOICE_FIELDS, [
        ["2026-11-acme", "acme", "149.90", "2026-11-05"],
        ["2026-11-beta", "beta", "1,5", "2026-11-05"],
    ])
    assert errors(tmp_path / "accounts.csv") == [
        f"{tmp_path / 'accounts.csv'}:3: company: contains a control character (U+000A) at position 5: "
        "one line of plain text expected",
        f"{tmp_path / 'accounts.csv'}:3: due_day: must be a whole number, not text '2x'",
        f"{tmp_path / 'accounts.csv'}:5: social: write network=handle (like instagram=@empresa), not 'instagram'",
        f"{tmp_path / 'accounts.csv'}:5: past_delinquencies: must be 0..999, not -1",
        f"{invoices}:3: amount: not a decimal number (write 1234.56): '1,5'",
    ]


def test_csv_header_problems(tmp_path):
    write_csv(tmp_path, "accounts.csv", ["id", "company", "emails", "e-mails", "company"], [])
    assert errors(tmp_path) == [
        f"{tmp_path / 'accounts.csv'}:1: e-mails: unknown column (did you mean 'emails'?)",
        f"{tmp_path / 'accounts.csv'}:1: company: column appears twice",
        f"{tmp_path / 'accounts.csv'}:1: document: required column missing",
    ]


def test_csv_saved_with_semicolons_is_explained(tmp_path):
    (tmp_path / "accounts.csv").write_text("id;company;document;emails\nacme;ACME;11222333000181;a@acme.com.br\n",
                                           encoding="utf-8")
    assert "columns must be separated by commas, not ';'" in errors(tmp_path)[0]


def test_csv_row_with_too_many_cells(tmp_path):
    write_csv(tmp_path, "invoices.csv", INVOICE_FIELDS, [["a", "acme", "1.00", "2026-11-05", "", "", "", "", "extra"]])
    assert errors(tmp_path, {"acme": Account("acme", "A", "111.444.777-35", ("a@a.com.br",))}) == [
        f"{tmp_path / 'invoices.csv'}:2: 9 cells but 8 columns"]


def test_csv_files_must_have_the_pairs_names(tmp_path):
    write_csv(tmp_path, "clientes.csv", ACCOUNT_FIELDS, [])
    assert "CSV files must be named accounts.csv and invoices.csv" in errors(tmp_path / "clientes.csv")[0]
    assert "neither accounts.csv nor invoices.csv is there" in errors(tmp_path)[0]


# --- the shortcuts in documents.py agree with the libraries they stand in for ----------------------

_atom = st.from_regex(r"[A-Za-z0-9_+-]{1,40}", fullmatch=True)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?", fullmatch=True)
_tld = st.one_of(st.sampled_from(["br", "com", "arpa", "test", "local", "localhost", "onion", "invalid"]),
                 st.from_regex(r"[a-z]{2,25}", fullmatch=True))
_addresses = st.builds(lambda local, labels, tld: ".".join(local) + "@" + ".".join(labels + [tld]),
                       st.lists(_atom, min_size=1, max_size=3), st.lists(_label, min_size=1, max_size=4), _tld)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_addresses)
@example("WWW@0.br")  # a role mailbox: the library lower-cases it, so the quick check must not take it
@example("postmaster@0.br")  # one already in lower case: unchanged, so the quick check may take it
def test_the_quick_email_check_accepts_only_what_email_validator_accepts(address):
    if is_plain_email(address):
        assert validate_email(address, check_deliverability=False).normalized == address
        assert normalize_email(address) == address


_alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@settings(max_examples=1000, deadline=None)
@given(st.booleans(), st.text(alphabet=_alnum, min_size=12, max_size=12), st.integers(0, 13),
       st.sampled_from("0123456789AZ"), st.booleans())
def test_check_digits_agree_with_validate_docbr(is_cpf, body, position, replacement, damage):
    if is_cpf:
        doc = CPF().generate()
        doc = doc[:position % 11] + replacement + doc[position % 11 + 1:] if damage and replacement.isdigit() else doc
        expected = CPF().validate(doc)
    else:
        doc = body + CNPJ()._generate_first_digit(body)
        doc += CNPJ()._generate_second_digit(doc)
        doc = doc[:position] + replacement + doc[position + 1:] if damage else doc
        expected = CNPJ().validate(doc)
    try:
        normalize_document(doc)
        ours = True
    except ValueError:
        ours = False
    assert ours == expected, doc


def test_csv_not_in_utf8_gives_the_line_of_the_bad_byte(tmp_path):
    rows = [_csv_account(id=f"a{n}", company=f"Empresa {n}") for n in range(3000)]
    path = write_csv(tmp_path, "accounts.csv", ACCOUNT_FIELDS, rows)
    data = path.read_bytes().replace(b"Empresa 2500,", "Empresa São,".encode("latin-1"))
    path.write_bytes(data)
    assert errors(path)[-1] == f"{path}:2502: not UTF-8 text: save the file as UTF-8"


# --- every problem, warnings, text that is not text (issue 6, points 1, 20, 23) -------------------

def test_every_problem_of_a_record_is_reported_in_one_run(tmp_path):
    path = write_json(tmp_path, [account(emails=["financeiro@acme.com.br", "x@"], portal_email="diretoria@acme.com.br")],
                      [invoice(account="ghost", amount="1,5", issued="2026-02-30")])
    found = [re.sub(r"^.*?:\d+: ", "", e).split(":")[0] for e in errors(path)]
    assert found == ["accounts[0].emails[1]", "accounts[0].portal_email",
                     "invoices[0].amount", "invoices[0].issued", "invoices[0].account"]


def test_a_payment_date_that_differs_from_the_stored_one_is_a_warning_with_its_line(tmp_path):
    path = write_json(tmp_path, [account()], [invoice(paid="2026-11-19"), invoice(id="b", paid=None),
                                              invoice(id="c", paid="2026-11-18")])
    stored = {"2026-11-acme": date(2026, 11, 18), "b": date(2026, 11, 18), "c": date(2026, 11, 18)}
    batch = parse_file(path, {}, TODAY, payments=stored)
    line = path.read_text(encoding="utf-8").splitlines().index('      "paid": "2026-11-19",') + 1
    assert batch.warnings == [f"{path}:{line}: invoices[0].paid: already paid on 18/11/2026 (kept)"]
    assert [i.paid for i in batch.invoices] == [date(2026, 11, 19), None, date(2026, 11, 18)]  # the store decides


def test_a_lone_surrogate_is_an_error_not_a_traceback(tmp_path):
    path = tmp_path / "billing.json"
    path.write_text(json.dumps({"accounts": [account(company="ACME \ud800")]}), encoding="ascii")  # as \\ud800
    [error] = errors(path)
    assert error.endswith("accounts[0].company: not valid text: a lone surrogate U+D800 at position 6")


@pytest.mark.parametrize("text, reason", [
    ('{"accounts": [' + "[" * 100_000 + "]" * 100_000 + "]}", "values nested too deeply"),
    ('{"invoices": [{"id": "a", "amount": ' + "9" * 5000 + "}]}", "a number with too many digits"),
])
def test_json_that_python_cannot_hold_is_an_error(tmp_path, text, reason):
    path = tmp_path / "billing.json"
    path.write_text(text, encoding="utf-8")
    assert errors(path)[-1].endswith(f"not valid JSON: {reason}")


def test_the_fast_paths_invoice_records_have_the_models_fields():
    """The fast path decodes invoices into `_InvoiceIn` and archives them as `ArchivedInvoice`:
    a field added to `Invoice` must be added to both, or the fast path drops it."""
    from notifier.state.importer import _InvoiceIn
    from notifier.billing.models import Invoice
    from notifier.state.archived import ArchivedInvoice
    assert _InvoiceIn.__struct_fields__ == Invoice._fields
    assert ArchivedInvoice.__struct_fields__ == ("archived", *Invoice._fields)
