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
from notifier.billing.models import Account, Invoice, Notice
from notifier.channels import Result
from notifier.run.render import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    SAMPLE_ACCOUNTS,
    SAMPLE_INVOICES,
    Renderer,
    TemplateError,
    brl,
    failure_cause,
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
    if channel == "social":  # short and neutral: no amount, no Pix, no customer document
        assert "R$" not in text and "000201" not in text and ACME.document not in text and len(text) < 1000
        assert "acme.com.br" in text and "financeiro@lucanet.com.br" in text and "Painel Financeiro" in text
    else:  # the due-today SMS leaves out the due date for the deadline, 23/11 (issue 20, point 10)
        assert as_sent(f"R${NBSP}1.234,56") in text
        assert ("23/11/2026" if (channel, stage) == ("sms", "due_today") else "20/11/2026") in text
    if channel in CUSTOMER_CHANNELS:  # CDC art. 42-A (an SMS may let the site stand for the address)
        company = Company()
        for fact in (company.legal_name, company.cnpj) + ((company.address,) if channel != "sms" else ()):
            assert as_sent(fact) in text
    if channel in ("email", "whatsapp"):
        assert "financeiro@lucanet.com.br" in text and "Painel Financeiro" in text
        assert "00020126580014br.gov.bcb.pix0136acme" in text
        # On WhatsApp the Pix code that follows pays the invoice: no link beside it (issue 20, point 11).
        assert ("https://pagar.lucanet.com.br/f/2026-11-acme" in text) == (channel == "email")
    if channel == "whatsapp":  # the Pix code alone in its own message, so a phone copies just it
        assert message.parts[1] == "00020126580014br.gov.bcb.pix0136acme\n"
        assert message.parts[0].rstrip().endswith("Responda SAIR para não receber mais mensagens por aqui.")
    if stage in ("suspension_warning", "suspended", "deletion_warning", "deletion_due") and channel == "email":
        assert "cancelamento deve ser solicitado por chamado" in text
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
    assert ("serão apagados em 05/12/2026 e o débito ficará sujeito a protesto. Antes disso, em 30/11/2026, os "
            "serviços serão suspensos.") in warning


def test_two_open_invoices_are_both_listed_with_their_total():
    older = ACME_INVOICE._replace(id="2026-10-acme", amount=Decimal("149.90"), due=date(2026, 10, 20), pix_code=None,
                    payment_url=None)
    message = render("email", invoices=(older, ACME_INVOICE))
    assert (f"- Fatura 2026-10-acme: R${NBSP}149,90\n  vencimento em 20/10/2026 (vencida) · serviços suspensos desde "
            "31/10/2026 · exclusão dos dados prevista desde 20/11/2026") in message.text
    assert (f"- Fatura 2026-11-acme: R${NBSP}1.234,56\n  vencimento em 20/11/2026 (vencida) · suspensão dos serviços "
            "em 30/11/2026 · exclusão dos dados em 20/12/2026") in message.text
    assert f"Total em aberto (2 faturas): R${NBSP}1.384,46" in message.text
    assert f"<strong>Total em aberto (2 faturas)</strong></td><td align=\"right\" style=\"white-space:nowrap;\"><strong>R${NBSP}1.384,46" in message.html


def test_an_account_without_portal_access_is_told_how_to_get_the_invitation():
    no_portal = ACME._replace(portal_email=None)
    email = render("email", account=no_portal)
    # Without access, the invitation comes first, where the portal is offered.
    assert ("Como pagar:\n- Pelo Painel Financeiro, a forma mais segura, com boleto bancário, Pix ou cartão de crédito. "
            "O acesso é liberado por convite: peça o seu respondendo a este e-mail e indique qual dos e-mails "
            "cadastrados para cobrança deseja usar no login (financeiro@acme.com.br ou maria@acme.com.br).") in email.text
    assert "O acesso é liberado por convite" in email.html
    whatsapp = render("whatsapp", account=no_portal).text
    assert ('pelo Painel Financeiro, em www.lucanet.com.br (no canto superior direito, botão "Painéis / Webmail / '
            'Ajuda" e depois "Painel Financeiro"). Acesso por convite: peça ao financeiro.') in whatsapp
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
    assert 'Olá, Ana "<b>" & Cia!' in render("whatsapp", account=evil).text


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
        # Staff see it masked; a customer's phone or profile may be read by others: left out.
        assert (masked in message.text) == (channel == "staff")


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
        assert "R$ " in text and "financeiro@lucanet.com.br." in text


# The longest company and customer data we expect to meet (issue 9, point 4).
LONG_COMPANY = replace(Company(), legal_name="Lucanet Hospedagem de Sites e Serviços de Internet Ltda",
                       address="Avenida Brigadeiro Faria Lima, 1234, conjunto 56, Jardim Paulistano, São Paulo - SP, 01452-000",
                       late_fees="multa de 2% e juros de 1% ao mês, conforme contrato; o valor atualizado está no Painel Financeiro")
LONG_DOMAIN = "padaria-e-confeitaria-do-joao.com.br"


@pytest.mark.parametrize("n, account, invoices, today", [c for c in sample_cases() if c[0].channel == "sms"],
                         ids=lambda v: getattr(v, "stage", None) and f"{v.account}.{v.stage}")
def test_every_sms_says_how_to_pay_and_whom_to_ask_even_with_the_longest_data(n, account, invoices, today):
    """RULES.md: every message says how to pay and whom to ask, SMS included, within two segments."""
    account = account._replace(domain=LONG_DOMAIN)
    text = Renderer(Config(company=LONG_COMPANY)).render(n, account, invoices, today).text
    assert sms_segments(text) <= 2 and is_gsm7(text), text
    # With "Resp. SAIR p/ nao receber" in every SMS (issue 20) the longest data fills the two
    # segments; the renderer's last fit (dates without their year) keeps them within 306.
    assert len(text) <= 306, f"{len(text)} characters: more than two segments"
    assert text.endswith("Resp. SAIR p/ nao receber")
    assert text.startswith(to_gsm7(LONG_COMPANY.legal_name) + ":") and "CNPJ 11.222.333/0001-81" in text
    assert LONG_DOMAIN in text and "R$ " in text
    how_to_pay = "Pague em www.lucanet.com.br." if account.has_portal_access else "Boleto, Pix e duvidas:"
    assert how_to_pay in text and "financeiro@lucanet.com.br" in text
    assert "www.lucanet.com.br" in text  # the site stands for the address left out


def test_sms_states_the_late_charges_when_they_fit():
    text = render("sms", "overdue", config=Config(company=replace(Company(), late_fees="multa de 2%")),
                  account=ACME._replace(domain="a.com.br")).text
    assert "pos o vencimento: multa de 2%." in text and "www.lucanet.com.br" in text
    assert "apos o vencimento" not in render("sms", "reminder", day=date(2026, 11, 17)).text


def test_an_sms_that_cannot_fit_is_an_error_naming_the_template():
    huge = ACME._replace(domain="x" * 200 + ".com.br")
    with pytest.raises(TemplateError, match=r"message_templates/sms/base\.txt \(stage overdue\): the SMS takes 3 segments"):
        render("sms", account=huge)
    # On WhatsApp the message still goes; only its SMS fallback text is missing.
    assert "sms_text" not in render("whatsapp", account=huge).meta


def test_whatsapp_carries_its_sms_fallback_text_unless_sms_is_opted_out():
    sms_text = render("whatsapp").meta["sms_text"]
    assert sms_text == render("sms").text
    assert "sms_text" not in render("whatsapp", account=ACME._replace(opt_out=frozenset({"sms"}))).meta


def test_amounts_are_written_as_babel_writes_brl_in_pt_br():
    """`brl` writes CLDR's pt_BR currency format itself (loading babel's locale data cost every
    rendering process 60-70 ms): babel stays the reference, for every shape of amount."""
    import random
    from babel.numbers import format_currency
    rng = random.Random(20261201)
    amounts = [Decimal(n).scaleb(-2) for n in range(0, 200_001, 7)]  # every grouping up to 2.000,00
    amounts += [Decimal(rng.randrange(10 ** rng.randrange(1, 15))).scaleb(-rng.randrange(0, 5)) for _ in range(3000)]
    amounts += [Decimal(v) for v in ("0.005", "0.015", "0.125", "0.135", "999.995", "1234.565", "1E3", "2.5E-3")]
    amounts += [-a for a in amounts[::50]]
    assert brl(Decimal("1234.56")) == f"R${NBSP}1.234,56" and brl("-0.5") == f"-R${NBSP}0,50"
    assert [brl(a) for a in amounts] == [format_currency(a, "BRL", locale="pt_BR") for a in amounts]


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


def test_whatsapp_sends_its_text_then_the_pix_code_alone_then_the_tutorial():
    message = render("whatsapp", tutorial=True)
    text, pix, *tutorial = message.parts
    tutorial = "\n".join(tutorial)  # in bodies of one screen each
    assert text.startswith("Olá, Maria Souza! Aqui é o financeiro da Lucanet.")
    assert "*R$\u00a01.234,56*" in text and "*20/11/2026*" in text and "*30/11/2026*" in text  # WhatsApp's bold
    assert "Pix copia e cola: na próxima mensagem." in text and "Nas próximas mensagens, explicamos" in text
    assert pix == "00020126580014br.gov.bcb.pix0136acme\n"
    assert tutorial.startswith("*Como funciona a cobrança da Lucanet*\n\nPor padrão") and "virada do mês" in tutorial
    assert message.text == "\n\n".join(p.strip("\n") for p in message.parts) + "\n"
    assert all(len(p) <= 1024 for p in message.parts)
    assert "Como funciona" not in "".join(render("whatsapp").parts)


@pytest.mark.parametrize("n, account, invoices, today", [c for c in sample_cases() if c[0].channel == "whatsapp"],
                         ids=lambda v: getattr(v, "stage", None) and f"{v.account}.{v.stage}")
def test_whatsapp_text_is_short_and_offers_the_opt_out(n, account, invoices, today):
    message = Renderer(Config()).render(n, account, invoices, today)
    text = message.parts[0]
    assert len(text) < 1024, f"{len(text)} characters"  # one screen, like an approved template
    assert text.rstrip().endswith("Responda SAIR para não receber mais mensagens por aqui.")
    assert "Lucanet Hospedagem de Sites Ltda · CNPJ 11.222.333/0001-81 · Rua Exemplo, 100" in text
    assert [p.strip() for p in message.parts[1:len([i for i in invoices if i.pix_code]) + 1]] == \
        [i.pix_code for i in invoices if i.pix_code]
    assert "000201" not in text  # the Pix code only alone, in its own message


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
                      site="https://hospedabem.com.br", portal_url="https://hospedabem.com.br/painel",
                      portal_path="menu Cliente, opção Financeiro", payment_methods=("Pix", "boleto bancário"),
                      tickets_url="https://hospedabem.com.br/chamados")
    tutorial = Renderer(Config(company=company)).tutorial()
    assert "Você pode pagar com Pix ou boleto bancário." in tutorial
    assert tutorial.count("cobranca@hospedabem.com.br") == 2
    assert "Painel Financeiro, em https://hospedabem.com.br/painel (menu Cliente, opção Financeiro)" in tutorial
    assert "lucanet" not in tutorial.lower()
    assert ("cancelamento deve ser solicitado por chamado, aberto em https://hospedabem.com.br/chamados, antes da "
            "virada do mês") in tutorial
    # Point 12: the company's words, edited.
    assert "para que fique atento aos vencimentos, a fim de evitar" in tutorial and "principalmente" not in tutorial
    email = Renderer(Config(company=company)).render(notice("email", tutorial=True), ACME, [ACME_INVOICE], OVERDUE_DAY)
    assert "Você pode pagar com Pix ou boleto bancário." in email.text
    assert "<p>Você pode pagar com Pix ou boleto bancário.</p>" in email.html


# --- overrides and broken templates ---------------------------------------------------------------

STAGES_DIR = Path(__file__).parent.parent / "message_templates" / "stages"


def override_stage(tmp_path, stage: str, old: str, new: str) -> Path:
    """An operator's copy of stages/STAGE.txt with one piece changed."""
    (tmp_path / "stages").mkdir(exist_ok=True)
    text = (STAGES_DIR / f"{stage}.txt").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "stages" / f"{stage}.txt"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_an_operator_template_wins_over_ours(tmp_path):
    override_stage(tmp_path, "overdue", "{% macro subject() %}Em atraso:", "{% macro subject() %}Aviso do operador. Em atraso:")
    message = render("email", config=Config(templates=tmp_path))
    assert message.subject.startswith("Aviso do operador. Em atraso: fatura de R$")
    assert "não identificamos o pagamento" in message.text  # everything else is still ours


def test_a_missing_override_folder_is_refused(tmp_path):
    with pytest.raises(TemplateError, match="templates folder not found"):
        Renderer(Config(templates=tmp_path / "nope"))


def test_check_reports_file_and_line_of_an_undefined_variable(tmp_path):
    broken = override_stage(tmp_path, "overdue", "{% macro headline() %}\n", "{% macro headline() %}\n{{ cliente_nome }}\n")
    line = broken.read_text(encoding="utf-8").split("\n").index("{{ cliente_nome }}") + 1
    problems = Renderer(Config(templates=tmp_path)).check()
    assert f"{broken}:{line}: 'cliente_nome' is undefined" in problems
    assert len(problems) == 1  # the same error once, not once per sample and channel
    with pytest.raises(TemplateError, match=f"{broken}:{line}: 'cliente_nome' is undefined"):
        render("whatsapp", config=Config(templates=tmp_path))


def test_check_reports_file_and_line_of_a_syntax_error(tmp_path):
    (tmp_path / "common").mkdir()
    broken = tmp_path / "common" / "say.txt"
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
        yield pytest.param(n, account, invoices, today, id=f"{account.id}.{n.stage}.{n.channel}")


def show(message) -> str:
    """A message as a person reviews it: every part the channel sends."""
    parts = [f"channel: {message.channel}", f"recipient: {message.recipient}"]
    if message.subject:
        parts.append(f"subject: {message.subject}")
    if message.content_sid:
        parts.append(f"content_sid: {message.content_sid}\ncontent_variables: {dict(message.content_variables)}")
    if message.parts:
        parts.append("\n".join(f"----- whatsapp message {i} of {len(message.parts)} -----\n{p.rstrip()}"
                               for i, p in enumerate(message.parts, 1)))
    else:
        parts.append(f"----- text -----\n{message.text}")
    if message.html:
        parts.append(f"----- html -----\n{message.html}")
    for cid, data, mime in message.images:
        parts.append(f"----- inline image {cid} ({mime}, {len(data)} bytes) -----")
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


# --- issue 9: what every notice must tell ----------------------------------------------------------

ATELIE = SAMPLE_ACCOUNTS[2]  # due day 28: no suspension_warning before its suspension on 01/12/2026
ATELIE_NOV = SAMPLE_INVOICES["atelie"][0]
ATELIE_OCT = ATELIE_NOV._replace(id="2026-10-atelie", due=date(2026, 10, 28), issued=date(2026, 10, 5))


@pytest.mark.parametrize("stage, day", [("reminder", date(2026, 11, 25)), ("due_today", date(2026, 11, 30))])
def test_a_late_due_day_is_told_its_suspension_date_before_it_comes(stage, day):
    """Point 1: the ladder leaves no suspension_warning for due day 28, so the reminder and the
    due-day notice state the suspension date themselves, on every channel that tells dates."""
    renderer = Renderer(Config())
    n = notice("email", stage, account=ATELIE, invoices=(ATELIE_NOV,), day=day)
    email = renderer.render(n, ATELIE, [ATELIE_NOV], day)
    assert ("Atenção: se a fatura não for paga até 30/11/2026, conforme o contrato, os serviços de hospedagem de "
            "ateliefloredelis.com.br serão suspensos em 01/12/2026.") in email.text
    assert "<strong>01/12/2026</strong>" in email.html
    sms = renderer.render(replace(n, channel="sms", recipient=ATELIE.whatsapp), ATELIE, [ATELIE_NOV], day).text
    assert "suspensao em 01/12/2026." in sms.lower()
    # Due day 20 gets its suspension_warning on 27/11: the reminder need not say it.
    assert "serão suspensos" not in render("email", stage, day=date(2026, 11, 17) if stage == "reminder" else date(2026, 11, 23)).text


def test_with_several_open_invoices_each_date_comes_from_the_invoice_that_decides_it():
    """Point 2: on 01/12 the November invoice suspends nothing new; the October one suspended the
    service on 31/10 and its deletion date, 28/11, has passed. Each invoice is listed with its own
    dates, and the total is labelled as a total."""
    day = date(2026, 12, 1)
    covers = (("2026-11-atelie", day, "suspended"), ("2026-11-atelie", day, "overdue"))
    n = replace(notice("email", "suspended", account=ATELIE, invoices=(ATELIE_OCT, ATELIE_NOV), day=day), covers=covers)
    email = Renderer(Config()).render(n, ATELIE, [ATELIE_OCT, ATELIE_NOV], day)
    assert ("os serviços de hospedagem de ateliefloredelis.com.br estão suspensos desde 31/10/2026, porque a fatura "
            "2026-10-atelie de R$\u00a0149,90, com vencimento em 28/10/2026, continua em aberto.") in email.text
    assert "a partir de hoje" not in email.text and "28/12/2026" not in email.text.split("Faturas em aberto")[0]
    # Past its deletion date: the contract's terms with a way back (issue 20, point 14).
    assert ("A fatura 2026-10-atelie, com vencimento em 28/10/2026, completou um mês em aberto em 28/11/2026: a partir "
            "dessa data, conforme o contrato, os dados da hospedagem de ateliefloredelis.com.br podem ser apagados e o "
            "débito levado a protesto; se pagar agora, fale conosco para confirmar a restauração.") in email.text
    assert "serão reativados" not in email.text and "são apagados" not in email.text
    assert ("- Fatura 2026-10-atelie: R$\u00a0149,90\n  vencimento em 28/10/2026 (vencida) · serviços suspensos desde "
            "31/10/2026 · exclusão dos dados prevista desde 28/11/2026") in email.text
    assert ("- Fatura 2026-11-atelie: R$\u00a0149,90\n  vencimento em 28/11/2026 (vencida) · serviços suspensos desde "
            "01/12/2026 · exclusão dos dados em 28/12/2026") in email.text
    assert "Total em aberto (2 faturas): R$\u00a0299,80" in email.text
    assert email.subject.startswith("Serviços suspensos desde 31/10: fatura de R$ 149,90")
    sms = Renderer(Config()).render(replace(n, channel="sms", recipient=ATELIE.whatsapp), ATELIE,
                                    [ATELIE_OCT, ATELIE_NOV], day).text
    assert "suspensos desde 31/10/2026 pela fatura de R$ 149,90 vencida em 28/10/2026" in sms
    assert "299,80" not in sms or "Total em aberto: R$ 299,80" in sms  # a total is called a total


def test_the_first_overdue_email_of_a_first_time_delinquent_carries_the_tutorial_once():
    """Point 3: plan (and so preview and send) put the tutorial in the first e-mail after the due
    date for a first-time delinquent, as the company's text, unless the option is off."""
    from notifier.billing.models import LedgerEntry
    from notifier.billing.rules import plan_account
    config = Config()
    day = date(2026, 12, 1)  # due day 28: overdue and suspended on the same day
    notices, _ = plan_account(day, ATELIE, [ATELIE_NOV], None, [], config.calendar, config)
    emails = [n for n in notices if n.channel == "email"]
    assert emails and all(n.tutorial for n in emails)
    text = Renderer(config).render(emails[0], ATELIE, [ATELIE_NOV], day).text
    assert text.count("Como funciona a cobrança da Lucanet") == 1 and "Por padrão, nossas cobranças" in text
    sent = [LedgerEntry(ATELIE_NOV.id, ATELIE.id, day, "suspended", "email", r, "sent", tutorial=True)
            for r in ATELIE.emails]
    later, _ = plan_account(date(2026, 12, 21), ATELIE, [ATELIE_NOV], None, sent, config.calendar, config)
    assert [n for n in later if n.channel == "email"] and not any(n.tutorial for n in later if n.channel == "email")
    off = replace(config, tutorial_in_first_overdue_email=False)
    notices, _ = plan_account(day, ATELIE, [ATELIE_NOV], None, [], off.calendar, off)
    assert not any(n.tutorial for n in notices if n.channel == "email")
    # A reminder is never "first time": no tutorial before the due date.
    before, _ = plan_account(date(2026, 11, 25), ATELIE, [ATELIE_NOV], None, [], config.calendar, config)
    assert before and not any(n.tutorial for n in before)


@pytest.mark.parametrize("n, account, invoices, today", [c for c in sample_cases() if c[0].channel == "social"],
                         ids=lambda v: getattr(v, "stage", None) and f"{v.account}.{v.stage}")
def test_a_social_dm_is_short_and_discreet(n, account, invoices, today):
    """Point 9: who we are, a billing matter about the domain, where to look, how to check us,
    the tutorial link; no amount, no Pix code, no CPF/CNPJ of the customer."""
    config = Config(env={"TUTORIAL_URL": "https://www.lucanet.com.br/cobranca"})
    text = Renderer(config).render(n, account, invoices, today).text
    assert len(text) < 1000
    assert "R$" not in text and "000201" not in text and account.document not in text
    assert mask_document(account.document) not in text and not re.search(r"\d{2}/\d{2}/\d{4}", text)
    assert text.startswith("Olá! Aqui é a equipe financeira da Lucanet")
    assert "e-mail cadastrado na sua conta" in text and "Painel Financeiro" in text
    assert "um assunto administrativo da sua hospedagem" in text and "cobrança" not in text  # issue 20, point 12
    assert "Para confirmar que esta mensagem é nossa" in text and "Não pedimos pagamento por mensagem direta." in text
    assert (account.domain or "empresa de hospedagem de sites") in text and account.company not in text
    assert "Como funcionam as nossas faturas: https://www.lucanet.com.br/cobranca" in text  # the link, always


def test_the_html_email_shows_a_pix_qr_code_per_invoice_with_the_code_below():
    """Point 10: a QR code for each invoice with a Pix code, attached inline by Content-ID."""
    import segno  # noqa: F401  (the library that draws it)
    from email import message_from_bytes, policy
    from notifier.channels.email import EmailChannel
    older = ACME_INVOICE._replace(id="2026-10-acme", due=date(2026, 10, 20), pix_code=SAMPLE_INVOICES["exemplo"][0].pix_code)
    message = render("email", invoices=(older, ACME_INVOICE))
    assert [cid for cid, _, _ in message.images] == ["pix-2026-10-acme@notifier", "pix-2026-11-acme@notifier"]
    for cid, data, mime in message.images:
        assert mime == "image/png" and data.startswith(b"\x89PNG")
        assert f'<img src="cid:{cid}"' in message.html
    html = message.html
    assert html.index('src="cid:pix-2026-11-acme@notifier"') < html.index("00020126580014br.gov.bcb.pix0136acme")
    assert "<img" not in render("email", invoices=(ACME_INVOICE._replace(pix_code=None),)).html
    email = message_from_bytes(EmailChannel(Config()).compose(message, "Lucanet <financeiro@lucanet.com.br>"),
                              policy=policy.default)
    related = [part for part in email.walk() if part.get_content_type() == "multipart/related"]
    assert len(related) == 1
    images = [p for p in related[0].iter_parts() if p.get_content_maintype() == "image"]
    assert [p["Content-ID"] for p in images] == ["<pix-2026-10-acme@notifier>", "<pix-2026-11-acme@notifier>"]
    assert images[0].get_content() == message.images[0][1]


def test_subjects_put_the_key_words_first_and_the_email_opens_with_the_amount():
    """Point 11."""
    assert render("email", "reminder", day=date(2026, 11, 17)).subject.startswith("Vence em 20/11: fatura de R$")
    assert render("email", "due_today", day=date(2026, 11, 23)).subject.startswith(
        "Último dia para pagar sem acréscimos: fatura de R$ 1.234,56")  # 20/11 was a holiday
    plain_due = ACME_INVOICE._replace(due=date(2026, 11, 19))
    assert render("email", "due_today", invoices=(plain_due,), day=date(2026, 11, 19)).subject.startswith("Vence hoje:")
    assert render("email").subject.startswith("Em atraso: fatura de R$ 1.234,56 da hospedagem de acme.com.br")
    assert render("email", "suspension_warning", day=date(2026, 11, 27)).subject.startswith("Suspensão em 30/11:")
    message = render("email")
    assert message.text.split("\n")[2] == "Valor em aberto: R$\u00a01.234,56 (vencimento em 20/11/2026)"
    assert ('<div style="display:none; max-height:0; overflow:hidden; mso-hide:all;">Valor em aberto: '
            'R$\u00a01.234,56 (vencimento em 20/11/2026) · Lucanet</div>') in message.html


def test_late_charges_are_stated_after_the_due_date_and_never_before():
    """Point 5: `[company] late_fees` in every post-due notice; nothing when unset."""
    fees = "multa de 2% e juros de 1% ao mês, conforme contrato; o valor atualizado está no Painel Financeiro"
    config = Config(company=replace(Company(), late_fees=fees))
    sentence = f"após o vencimento: {fees}."  # "Pagamento após..." in full, "Após..." in WhatsApp's terse form
    for stage in ("overdue", "suspension_warning", "suspended", "deletion_warning", "deletion_due"):
        for channel in ("email", "whatsapp"):
            assert sentence.lower() in render(channel, stage, config=config).text.lower(), (stage, channel)
    assert sentence in render("email", config=config).html
    assert "após o vencimento" not in render("email", "reminder", config=config, day=date(2026, 11, 17)).text
    assert "após o vencimento" not in render("email").text


def test_wording_without_a_domain_speaks_of_the_services_not_the_person():
    """Point 12; a person (a CPF) is spoken to: "da sua conta" (issue 20, point 13)."""
    joao, invoices = SAMPLE_ACCOUNTS[1], SAMPLE_INVOICES["joao"]
    text = render("email", "deletion_warning", account=joao, invoices=invoices, day=date(2026, 11, 29)).text
    assert "de R$\u00a0149,90 da sua conta, com vencimento" in text and "os dados da sua conta podem ser apagados" in text
    assert "hospedagem de João Pereira" not in text and "dados de João Pereira" not in text
    company = ACME._replace(domain="")
    text = render("email", "deletion_warning", account=company, day=date(2026, 12, 13)).text
    assert "dos serviços contratados por ACME Comércio Ltda" in text and "os dados da conta de ACME Comércio Ltda" in text
    config = Config(company=replace(Company(), tickets_url="https://www.lucanet.com.br/chamados"))
    text = render("email", "suspended", config=config, day=date(2026, 12, 1)).text
    assert ("o cancelamento deve ser solicitado por chamado, aberto em https://www.lucanet.com.br/chamados, antes da "
            "virada do mês, ou seja, até 31/12/2026.") in text
    assert "PIX" not in text and "Pix" in text


@pytest.mark.parametrize("result, cause, says", [
    (Result("blocked", "twilio", code="config:whatsapp.templates.overdue", detail="configure a content_sid"),
     "config", "O que configurar (config:whatsapp.templates.overdue): configure a content_sid"),
    (Result("failed", "twilio", code="21211", detail="invalid number", permanent=True),
     "contact", "corrija o cadastro no sistema de cobrança"),
    (Result("failed", "smtp", code="421", detail="try later"), "retry", "o notificador tentará de novo"),
    (Result("failed", "twilio", code="30007", detail="filtered", permanent=True), "provider", "Veja o motivo"),
])
def test_the_staff_failure_alert_says_what_to_do_for_its_cause(result, cause, says):
    """Point 13."""
    alert = Renderer(Config()).render_failure_alert(notice("whatsapp"), ACME, [ACME_INVOICE], OVERDUE_DAY, result)
    assert failure_cause(result) == cause and alert.meta["alert"] == f"failure:{cause}"
    assert says in alert.text
    assert ("corrija o cadastro no sistema de cobrança" in alert.text) == (cause == "contact")


# --- WhatsApp templates to submit to Meta (docs/whatsapp-templates) --------------------------------

ROOT = Path(__file__).parent.parent
META_TEMPLATES = sorted((ROOT / "docs" / "whatsapp-templates").glob("*.json"))


def example_whatsapp_mapping() -> dict:
    """The commented-out [channels.whatsapp.templates.*] tables of notifier.example.toml, read."""
    import tomllib
    lines = (ROOT / "notifier.example.toml").read_text(encoding="utf-8").split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("# [channels.whatsapp.templates."))
    text = "\n".join(line[2:] for line in lines[start:] if line.startswith("# "))
    return tomllib.loads(text)["channels"]["whatsapp"]["templates"]


def test_a_meta_template_ships_for_every_stage_a_customer_may_get_on_whatsapp():
    from notifier.run.render import WHATSAPP_STAGES
    assert [p.stem for p in META_TEMPLATES] == sorted(WHATSAPP_STAGES)
    assert sorted(example_whatsapp_mapping()) == sorted(WHATSAPP_STAGES)


@pytest.mark.parametrize("path", META_TEMPLATES, ids=lambda p: p.stem)
def test_each_meta_template_follows_the_rules_and_its_mapping_renders(path):
    import json
    doc = json.loads(path.read_text(encoding="utf-8"))
    body = doc["types"]["twilio/text"]["body"]
    company = Company()
    assert doc["language"] == "pt_BR" and len(body) <= 1024
    assert company.legal_name in body and company.cnpj in body and company.address in body  # CDC art. 42-A
    assert body.endswith("Responda SAIR para não receber mais mensagens por aqui.")
    assert not body.startswith("{{") and not re.search(r"\}\}\s*\{\{", body)  # Meta's rules on variables
    numbers = sorted(set(re.findall(r"\{\{(\d+)\}\}", body)), key=int)
    assert numbers == [str(i) for i in range(1, len(numbers) + 1)] == sorted(doc["variables"], key=int)
    assert "000201" not in body and not re.search(r"\d{3}\.\d{3}\.\d{3}-\d{2}", body)
    assert not re.search(r"\b(?:PIX|devedor|inadimplente|cobrança judicial|nome sujo)\b", body)
    spec = {**example_whatsapp_mapping()[path.stem], "content_sid": "HX" + "0" * 32}
    assert sorted(spec["variables"], key=int) == numbers
    message = render("whatsapp", path.stem, config=whatsapp_config(**{path.stem: spec}), day=date(2026, 11, 24))
    assert message.content_sid == spec["content_sid"] and all(message.content_variables.values())


def test_the_whatsapp_channel_sends_each_part_as_its_own_message(tmp_path):
    """Point 7: free-form WhatsApp goes as the renderer's parts, the Pix code alone in one."""
    import json
    from notifier import channels
    message = render("whatsapp", tutorial=True)
    channel = channels.build("whatsapp", Config(outbox=tmp_path, channels={"whatsapp": {"freeform": True}}))
    channel.send(message)  # no Twilio configured: the outbox keeps what would be sent
    [written] = list((tmp_path / "whatsapp").glob("*.json"))
    bodies = [m["body"] for m in json.loads(written.read_text(encoding="utf-8"))["messages"]]
    assert bodies[0] == message.parts[0].strip() and bodies[1] == "00020126580014br.gov.bcb.pix0136acme"
    assert bodies[2].startswith("*Como funciona a cobrança da Lucanet*")  # the tutorial: one screen a body
    assert bodies[2:] == [p.strip() for p in message.parts[2:]] and len(bodies) > 3


EXAMPLE_LATE_FEES = ("multa de 2% e juros de 1% ao mês, conforme contrato; o valor atualizado está no "
                     "Painel Financeiro")


def _renderer_with_late_fees(tmp_path, fees):
    from notifier.config import load_config
    toml = tmp_path / "n.toml"
    toml.write_text(f'[company]\nlate_fees = "{fees}"\n', encoding="utf-8")
    return Renderer(load_config(toml, {}))


def test_whatsapp_past_one_screen_says_the_same_facts_in_fewer_words(tmp_path):
    # notifier.example.toml's late-fee sentence with two invoices open ran to 1,150 characters:
    # the terse wording (then the invoice list as a second message, then a cut between
    # paragraphs) keeps every body within one screen, and every amount and date.
    from itertools import takewhile
    from notifier.run.render import WHATSAPP_TEXT_LIMIT, sample_cases
    renderer = _renderer_with_late_fees(tmp_path, EXAMPLE_LATE_FEES)
    terse = 0
    for notice, account, invoices, today in sample_cases():
        if notice.channel != "whatsapp":
            continue
        bodies = renderer.render(notice, account, invoices, today).parts
        assert all(len(b) <= WHATSAPP_TEXT_LIMIT for b in bodies), (account.id, notice.stage)
        pix = {i.pix_code + "\n" for i in invoices if i.pix_code}
        text = "\n".join(takewhile(lambda b: b not in pix and not b.startswith("*Como funciona"), bodies))
        if "Aqui é o financeiro" in text:
            terse += 1
            if len(invoices) > 1:
                for inv in invoices:
                    assert f"{inv.id}: *{brl(inv.amount)}* · venc. {inv.due:%d/%m}" in text
                assert f"Total em aberto: *{brl(sum(i.amount for i in invoices))}*" in text
            else:
                assert f"*{brl(invoices[0].amount)}*" in text
            if notice.stage not in ("reminder", "due_today"):  # past a due date
                assert "multa de 2% e juros de 1% ao mês" in text
            assert "www.lucanet.com.br" in text and "financeiro@lucanet.com.br" in text
            assert "CNPJ 11.222.333/0001-81 · Rua Exemplo, 100" in text
            assert "Responda SAIR para não receber mais mensagens por aqui." in text
        else:
            assert "Aqui é a equipe financeira" in text  # what fits keeps the full wording
    assert terse >= 5  # joao's two-invoice notices past their due date, atelie's suspension


def test_a_whatsapp_text_longer_than_a_screen_is_a_warning_not_a_block(tmp_path):
    # A late-fee sentence too long even for the terse wording: check says so, but the message
    # still goes (as several bodies of one screen): nothing is blocked for it.
    renderer = _renderer_with_late_fees(tmp_path, EXAMPLE_LATE_FEES + "; detalhes no contrato" * 12)
    assert any("joao, stage overdue" in w for w in renderer.warnings())
    assert renderer.problems_for("whatsapp", "overdue") == [] and renderer.check() == []
