"""Messages: real rendering of the real templates in message_templates/ (and operators' overrides).

Snapshots of every stage x channel for the built-in samples live in tests/snapshots/; after a
deliberate change of wording, rewrite them with `UPDATE_SNAPSHOTS=1 python -m pytest
tests/test_render.py` and read the diff before committing.
"""
from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from notifier.config import CHANNELS, STAGES, Company, Config
from notifier.models import Account, Invoice, Notice
from notifier.render import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    SAMPLE_ACCOUNTS,
    SAMPLE_INVOICES,
    Renderer,
    TemplateError,
    mask_document,
    sample_cases,
    sms_segments,
    split_whatsapp,
    to_gsm7,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
NBSP = "\u00a0"
CUSTOMER_CHANNELS = ("email", "whatsapp", "sms", "social")

ACME = Account(
    id="acme", company="ACME Comércio Ltda", contact_name="Maria Souza", document="45.997.418/0001-53",
    domain="acme.com.br", emails=("financeiro@acme.com.br", "maria@acme.com.br"), portal_email="maria@acme.com.br",
    whatsapp="+5511987654321", social=(("instagram", "@acme"),),
)
ACME_INVOICE = Invoice(
    id="2026-11-acme", account="acme", amount=Decimal("1234.56"), issued=date(2026, 11, 5), due=date(2026, 11, 20),
    payment_url="https://pagar.lucanet.com.br/f/2026-11-acme", pix_code="00020126580014br.gov.bcb.pix0136acme",
)
OVERDUE_DAY = date(2026, 11, 24)  # due 20/11/2026 is a holiday: effective 23/11, overdue 24/11


def notice(channel: str, stage: str = "overdue", recipient: str | None = None, tutorial: bool = False,
           account: Account = ACME, invoices=(ACME_INVOICE,), day: date = OVERDUE_DAY) -> Notice:
    default = {"email": account.emails[0], "social": "instagram:@acme", "staff": "staff"}.get(channel, account.whatsapp)
    return Notice(account=account.id, date=day, stage=stage, channel=channel, recipient=recipient or default,
                  invoices=tuple(i.id for i in invoices), first_time=True, tutorial=tutorial)


def render(channel: str, stage: str = "overdue", config: Config = Config(), account: Account = ACME,
           invoices=(ACME_INVOICE,), day: date = OVERDUE_DAY, tutorial: bool = False):
    n = notice(channel, stage, tutorial=tutorial, account=account, invoices=invoices, day=day)
    return Renderer(config).render(n, account, list(invoices), day)


# --- every stage x channel -----------------------------------------------------------------------

def test_check_finds_nothing_wrong_with_the_shipped_templates():
    assert Renderer(Config()).check() == []


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_every_stage_and_channel_carries_the_facts(stage, channel):
    message = render(channel, stage)
    text = message.text
    as_sent = to_gsm7 if channel == "sms" else str  # SMS: plain spaces, no accents GSM-7 lacks
    assert message.channel == channel and message.reply_to == "financeiro@lucanet.com.br"
    # Beyond these, WhatsApp carries its SMS fallback text and social the account's handle.
    assert {k: v for k, v in message.meta.items() if k not in ("sms_text", "social_handle")} == {
        "account": "acme", "stage": stage, "invoices": ["2026-11-acme"], "notice_date": "2026-11-24", "tutorial": False}
    if channel == "social":
        assert message.meta["social_handle"] == dict(ACME.social)[message.recipient.split(":", 1)[0]]
    assert as_sent(f"R${NBSP}1.234,56") in text and "20/11/2026" in text
    if channel in CUSTOMER_CHANNELS:  # CDC art. 42-A
        company = Company()
        for fact in (company.legal_name, company.cnpj, company.address):
            assert as_sent(fact) in text
    if channel in ("email", "whatsapp", "social"):
        assert "financeiro@lucanet.com.br" in text and "Painel Financeiro" in text
        assert "PIX copia e cola: 00020126580014br.gov.bcb.pix0136acme" in text
        assert "https://pagar.lucanet.com.br/f/2026-11-acme" in text
    if stage in ("suspension_warning", "suspended", "deletion_warning", "deletion_due") and channel != "sms":
        assert ("cancelamento deve ser solicitado por chamado" in text) == (channel != "staff")
    if channel == "email":
        assert message.subject and "\n" not in message.subject and "acme.com.br" in message.subject
        assert message.html.startswith("<!DOCTYPE html>") and "R$" in message.html
    if channel == "staff":
        assert message.subject and "ACME Comércio Ltda" in message.subject and 'conta "acme"' in text


def test_dates_follow_the_bank_calendar():
    reminder = render("email", "reminder", day=date(2026, 11, 17)).text
    assert "vence em 20/11/2026. Como essa data não é dia útil bancário, o pagamento pode ser feito sem acréscimos até 23/11/2026." in reminder
    assert "acme.com.br serão suspensos em 30/11/2026" in render("email", "suspension_warning", day=date(2026, 11, 27)).text
    suspended = render("email", "suspended", day=date(2026, 11, 30)).text
    assert "suspensos a partir de hoje, 30/11/2026" in suspended and "serão apagados em 20/12/2026" in suspended
    # Due day 5: the deletion warning comes before the suspension (RULES.md), and says so.
    early = ACME_INVOICE._replace(due=date(2026, 11, 5))
    warning = render("email", "deletion_warning", invoices=(early,), day=date(2026, 11, 28)).text
    assert "a data prevista é 05/12/2026. Antes disso, em 30/11/2026, os serviços serão suspensos." in warning


def test_two_open_invoices_are_both_listed_with_their_total():
    older = ACME_INVOICE._replace(id="2026-10-acme", amount=Decimal("149.90"), due=date(2026, 10, 20), pix_code=None,
                    payment_url=None)
    message = render("email", invoices=(older, ACME_INVOICE))
    assert f"- Fatura 2026-10-acme: R${NBSP}149,90, com vencimento em 20/10/2026 (vencida)" in message.text
    assert f"- Fatura 2026-11-acme: R${NBSP}1.234,56, com vencimento em 20/11/2026 (vencida)" in message.text
    assert f"Total: R${NBSP}1.384,46" in message.text and f"R${NBSP}1.384,46" in message.html


def test_an_account_without_portal_access_is_told_how_to_get_the_invitation():
    no_portal = ACME._replace(portal_email=None)
    email = render("email", account=no_portal)
    assert ("O acesso é liberado por convite: basta pedi-lo respondendo a este e-mail e indicar qual dos e-mails "
            "cadastrados para cobrança deseja usar no login (financeiro@acme.com.br ou maria@acme.com.br).") in email.text
    assert "O acesso é liberado por convite" in email.html
    whatsapp = render("whatsapp", account=no_portal).text
    assert "basta pedi-lo pelo e-mail financeiro@lucanet.com.br e indicar o e-mail que deseja usar no login" in whatsapp
    assert "maria@acme.com.br" not in whatsapp
    assert "convite" not in render("email").text


# --- escaping and privacy ------------------------------------------------------------------------

def test_customer_fields_stay_escaped_in_html_and_literal_in_text():
    evil = ACME._replace(company="<script>alert(1)</script> Ltda", contact_name='Ana "<b>" & Cia', domain="")
    message = render("email", account=evil)
    assert "<script>" not in message.html and "<b>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Ltda" in message.html
    assert "Ana &#34;&lt;b&gt;&#34; &amp; Cia" in message.html
    assert "<script>alert(1)</script> Ltda" in message.text and 'Olá, Ana "<b>" & Cia,' in message.text
    assert "<script>alert(1)</script> Ltda" in message.subject
    assert "<script>alert(1)</script> Ltda" in render("whatsapp", account=evil).text


@pytest.mark.parametrize("document, masked", [("45.997.418/0001-53", "**.997.418/0001-**"),
                                              ("529.982.247-25", "***.982.247-**")])
def test_documents_are_masked_outside_email(document, masked):
    account = ACME._replace(document=document)
    assert document in render("email", account=account).text
    assert document in render("email", account=account).html
    for channel in ("whatsapp", "sms", "social", "staff"):
        message = render(channel, account=account)
        assert document not in message.text and document not in (message.subject or "")
        assert document not in str(message.content_variables) and document not in str(message.meta)
        if channel != "sms":  # SMS has no room for it: left out
            assert masked in message.text


def test_mask_document_shapes():
    assert mask_document("111.444.777-35") == "***.444.777-**"
    assert mask_document("11144477735") == "***.444.777-**"
    assert mask_document("11.222.333/0001-81") == "**.222.333/0001-**"
    assert mask_document("12.ABC.345/01DE-35") == "**.ABC.345/01DE-**"  # alphanumeric CNPJ (2026)
    assert mask_document("nonsense") == "***"


# --- SMS -----------------------------------------------------------------------------------------

def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text)


@pytest.mark.parametrize("stage", STAGES)
def test_sms_is_gsm7_in_at_most_two_segments(stage):
    for account, invoices in [(ACME, (ACME_INVOICE,)), (SAMPLE_ACCOUNTS[1], SAMPLE_INVOICES["joao"])]:
        text = render("sms", stage, account=account, invoices=invoices).text
        assert is_gsm7(text) and NBSP not in text, text
        assert sms_segments(text) <= 2 and "\n" not in text
        assert "R$ " in text and "Duvidas: financeiro@lucanet.com.br." in text


def test_a_long_domain_makes_the_sms_leave_out_what_it_can():
    long_domain = ACME._replace(domain="padaria-e-confeitaria-do-joao.com.br")
    text = render("sms", "deletion_warning", account=long_domain).text
    assert sms_segments(text) == 2 and is_gsm7(text)
    assert "padaria-e-confeitaria-do-joao.com.br" in text and "CNPJ 11.222.333/0001-81" in text
    assert "Duvidas" not in text


def test_an_sms_that_cannot_fit_is_an_error_naming_the_template():
    huge = ACME._replace(domain="x" * 200 + ".com.br")
    with pytest.raises(TemplateError, match=r"message_templates/sms/overdue\.txt: the SMS takes 3 segments"):
        render("sms", account=huge)
    # On WhatsApp the message still goes; only its SMS fallback text is missing.
    assert "sms_text" not in render("whatsapp", account=huge).meta


def test_whatsapp_carries_its_sms_fallback_text_unless_sms_is_opted_out():
    sms_text = render("whatsapp").meta["sms_text"]
    assert sms_text == render("sms").text
    assert "sms_text" not in render("whatsapp", account=ACME._replace(opt_out=frozenset({"sms"}))).meta


def test_to_gsm7_transliterates_only_what_gsm7_lacks():
    assert to_gsm7(f"Não há cobrança: R${NBSP}1.234,56 – é “já” 2ª via…") == 'Nao ha cobranca: R$ 1.234,56 - é "ja" 2a via...'
    assert to_gsm7("Ação {x} € 😀") == "Acao {x} € ?"


@pytest.mark.parametrize("text, segments", [
    ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("€" * 80, 1), ("€" * 81, 2),  # extension characters take two septets
    ("ã" * 70, 1), ("ã" * 71, 2), ("ã" * 134, 2), ("ã" * 135, 3),  # one such character: UCS-2
])
def test_sms_segments(text, segments):
    assert sms_segments(text) == segments


# --- WhatsApp ------------------------------------------------------------------------------------

def test_split_whatsapp_keeps_paragraphs_whole_and_in_order():
    paragraphs = [f"Parágrafo {i}: " + "palavra " * (i * 3) for i in range(1, 12)]
    paragraphs = [p.strip() for p in paragraphs]
    text = "\n\n".join(paragraphs)
    parts = split_whatsapp(text, limit=300)
    assert len(parts) > 3 and all(len(p) <= 300 for p in parts)
    assert "\n\n".join(parts) == text  # nothing lost, nothing reordered, cut only between paragraphs
    assert [p for part in parts for p in part.split("\n\n")] == paragraphs


def test_split_whatsapp_cuts_an_oversized_paragraph_between_lines_then_words():
    line = "uma linha de texto comum"
    para = "\n".join([line] * 10)
    parts = split_whatsapp(f"Início\n\n{para}\n\nFim", limit=60)
    assert parts[0] == "Início" and parts[-1] == "Fim"
    assert all(len(p) <= 60 for p in parts) and "\n".join(parts[1:-1]) == para
    word = "https://exemplo.com.br/" + "a" * 100
    assert "".join(split_whatsapp(word, limit=50)) == word and all(len(p) <= 50 for p in split_whatsapp(word, 50))
    assert split_whatsapp("curto") == ["curto"]
    # Twilio counts UTF-16 units: an emoji takes two.
    assert split_whatsapp("😀" * 30, limit=40) == ["😀" * 20, "😀" * 10]


def test_whatsapp_with_the_tutorial_splits_into_bodies_twilio_accepts():
    message = render("whatsapp", tutorial=True)
    assert "Como funciona a cobrança da Lucanet" in message.text and "virada do mês" in message.text
    assert len(message.text) > 1600
    parts = split_whatsapp(message.text)
    assert len(parts) >= 2 and all(len(p) <= 1600 for p in parts)
    assert "\n\n".join(parts) == message.text.strip()
    assert parts[0].startswith("Olá, Maria Souza! Aqui é a equipe financeira da Lucanet.")
    assert parts[-1].rstrip().endswith("avisos de cobrança de ACME Comércio Ltda.")
    assert render("whatsapp").text.count("Como funciona a cobrança") == 0


TEMPLATE_CONFIG = {
    "content_sid": "HX0123456789abcdef0123456789abcdef",
    "variables": {"1": "{{ customer }}", "2": "{{ total }}", "3": "{{ invoice_summary }}",
                  "4": "{{ tutorial_url }}", "5": "Lucanet"},
}


def whatsapp_config(**templates) -> Config:
    return Config(channels={"whatsapp": {"templates": templates}}, env={"TUTORIAL_URL": "https://www.lucanet.com.br/cobranca"})


def test_an_approved_template_gets_its_variables_rendered():
    older = ACME_INVOICE._replace(id="2026-10-acme", amount=Decimal("149.90"), due=date(2026, 10, 20))
    message = render("whatsapp", config=whatsapp_config(overdue=TEMPLATE_CONFIG), invoices=(older, ACME_INVOICE),
                     tutorial=True)
    assert message.content_sid == "HX0123456789abcdef0123456789abcdef"
    assert message.content_variables == {
        "1": "Maria Souza",
        "2": "R$ 1.384,46",  # plain spaces: a template variable is one line of ordinary spaces
        "3": "fatura 2026-10-acme: R$ 149,90, vencimento 20/10/2026; fatura 2026-11-acme: R$ 1.234,56, vencimento 20/11/2026",
        "4": "https://www.lucanet.com.br/cobranca",
        "5": "Lucanet",
    }
    assert "Como funciona a cobrança" in message.text  # the free-form body, where it is allowed
    assert render("whatsapp", "reminder", config=whatsapp_config(overdue=TEMPLATE_CONFIG)).content_sid is None


def test_template_variables_are_single_lines():
    spec = {"content_sid": "HX1", "variables": {"1": "linha 1\n\nlinha 2\t\t{{ customer }}"}}
    message = render("whatsapp", config=whatsapp_config(overdue=spec))
    assert message.content_variables == {"1": "linha 1 linha 2 Maria Souza"}


@pytest.mark.parametrize("spec, error", [
    ({"content_sid": "HX1", "variables": {"1": "{{ nope }}"}}, r"channels\.whatsapp\.templates\.overdue\.variables\.1: 'nope' is undefined"),
    ({"content_sid": "HX1", "variables": {"1": "x" * 1025}}, r"variables: 1025 characters, more than an approved template's 1024"),
    ({"content_sid": "HX1", "variables": {"1": "{{ '' }}"}}, r"variables\.1: renders empty"),
    ({"variables": {"1": "x"}}, r"templates\.overdue: needs content_sid"),
])
def test_a_bad_template_configuration_is_named(spec, error):
    config = whatsapp_config(overdue=spec)
    with pytest.raises(TemplateError, match=error):
        render("whatsapp", config=config)
    assert any(re.search(error, p) for p in Renderer(config).check())


def test_check_names_an_unknown_stage_and_a_missing_tutorial_url():
    config = Config(channels={"whatsapp": {"templates": {"overdo": TEMPLATE_CONFIG}}})
    problems = Renderer(config).check()
    assert any("channels.whatsapp.templates.overdo: unknown stage" in p for p in problems)
    assert any(p.startswith("TUTORIAL_URL: not set") for p in problems)


# --- tutorial ------------------------------------------------------------------------------------

def test_the_tutorial_takes_its_facts_from_the_configuration():
    company = replace(Company(), name="Hospeda Bem", finance_email="cobranca@hospedabem.com.br",
                      site="https://hospedabem.com.br", portal_path="menu Cliente, opção Financeiro",
                      payment_methods=("PIX", "boleto bancário"))
    tutorial = Renderer(Config(company=company)).tutorial()
    assert "Você pode pagar com PIX ou boleto bancário." in tutorial
    assert tutorial.count("cobranca@hospedabem.com.br") == 2
    assert "no site da Hospeda Bem, https://hospedabem.com.br (menu Cliente, opção Financeiro)" in tutorial
    assert "lucanet" not in tutorial.lower()
    assert "cancelamento deve ser solicitado por chamado, antes da virada do mês" in tutorial
    email = Renderer(Config(company=company)).render(notice("email", tutorial=True), ACME, [ACME_INVOICE], OVERDUE_DAY)
    assert "Você pode pagar com PIX ou boleto bancário." in email.text
    assert "<p>Você pode pagar com PIX ou boleto bancário.</p>" in email.html


# --- overrides and broken templates ---------------------------------------------------------------

def test_an_operator_template_wins_over_ours(tmp_path):
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "overdue.subject.txt").write_text("Aviso do operador sobre {{ service }}\n", encoding="utf-8")
    message = render("email", config=Config(templates=tmp_path))
    assert message.subject == "Aviso do operador sobre acme.com.br"
    assert "não identificamos o pagamento" in message.text  # everything else is still ours


def test_a_missing_override_folder_is_refused(tmp_path):
    with pytest.raises(TemplateError, match="templates folder not found"):
        Renderer(Config(templates=tmp_path / "nope"))


def test_check_reports_file_and_line_of_an_undefined_variable(tmp_path):
    (tmp_path / "whatsapp").mkdir()
    broken = tmp_path / "whatsapp" / "overdue.txt"
    broken.write_text('{% extends "common/base.txt" %}\n{% block intro %}\nOlá {{ cliente_nome }}!\n{% endblock %}\n',
                      encoding="utf-8")
    problems = Renderer(Config(templates=tmp_path)).check()
    assert f"{broken}:3: 'cliente_nome' is undefined" in problems
    assert len(problems) == 1  # the same error once, not once per sample; social extends it too
    with pytest.raises(TemplateError, match=f"{broken}:3: 'cliente_nome' is undefined"):
        render("whatsapp", config=Config(templates=tmp_path))


def test_check_reports_file_and_line_of_a_syntax_error(tmp_path):
    (tmp_path / "common").mkdir()
    broken = tmp_path / "common" / "footer.txt"
    broken.write_text("{{ company.legal_name }}\n\n{% if %}\n", encoding="utf-8")
    problems = Renderer(Config(templates=tmp_path)).check()
    assert len(problems) == 1 and problems[0].startswith(f"{broken}:3: ")


def test_a_missing_included_template_names_the_including_file(tmp_path):
    (tmp_path / "sms").mkdir()
    broken = tmp_path / "sms" / "base.txt"
    broken.write_text('{{ company.legal_name }}:\n{% include "sms/nao_existe.txt" %}\n', encoding="utf-8")
    problems = Renderer(Config(templates=tmp_path)).check()
    assert f"{broken}:2: template not found: sms/nao_existe.txt" in problems


# --- snapshots -----------------------------------------------------------------------------------

def snapshot_cases():
    for n, account, invoices, today in sample_cases():
        if account.id == "exemplo" or n.stage == "overdue":
            yield pytest.param(n, account, invoices, today, id=f"{account.id}.{n.stage}.{n.channel}")


def show(message) -> str:
    """A message as a person reviews it: every part the channel sends."""
    parts = [f"channel: {message.channel}", f"recipient: {message.recipient}"]
    if message.subject:
        parts.append(f"subject: {message.subject}")
    if message.content_sid:
        parts.append(f"content_sid: {message.content_sid}\ncontent_variables: {dict(message.content_variables)}")
    parts.append(f"----- text -----\n{message.text}")
    if message.html:
        parts.append(f"----- html -----\n{message.html}")
    if message.meta.get("sms_text"):
        parts.append(f"----- sms fallback -----\n{message.meta['sms_text']}")
    return "\n".join(parts).replace(NBSP, " ").rstrip("\n") + "\n"


@pytest.mark.parametrize("n, account, invoices, today", list(snapshot_cases()))
def test_snapshot(n, account, invoices, today):
    path = SNAPSHOTS / f"{account.id}.{n.stage}.{n.channel}.txt"
    got = show(Renderer(Config()).render(n, account, invoices, today))
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with UPDATE_SNAPSHOTS=1 and review it"
    assert got == path.read_text(encoding="utf-8"), f"{path.name} changed: rerun with UPDATE_SNAPSHOTS=1 if intended"
