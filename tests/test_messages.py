"""What the customer messages say (issue 20, points 10-15): the real templates rendered for the
built-in samples, the real social channel, the real `check` command."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from notifier.config import Config
from notifier.run.render import (SAMPLE_ACCOUNTS, SAMPLE_INVOICES, WHATSAPP_TEXT_LIMIT, Renderer, sample_cases,
                                 sms_segments)

EXEMPLO, JOAO, ATELIE = SAMPLE_ACCOUNTS  # a company with a domain; a person (CPF, no domain); due day 28
STOP = "Resp. SAIR p/ nao receber"


def rendered(channel: str, account=None, stage: str | None = None, config: Config = Config()):
    """Every sample message of `channel` (of one account, one stage), as the renderer makes it."""
    renderer = Renderer(config)
    return [(n, renderer.render(n, a, invoices, today)) for n, a, invoices, today in sample_cases()
            if n.channel == channel and (account is None or a.id == account.id) and stage in (None, n.stage)]


def one(channel: str, account, stage: str, config: Config = Config()):
    [(_, message)] = rendered(channel, account, stage, config)
    return message


# --- point 10: SMS ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n, message", rendered("sms"), ids=lambda v: getattr(v, "stage", ""))
def test_every_sms_says_how_to_stop_within_two_segments(n, message):
    assert message.text.endswith(STOP) and sms_segments(message.text) <= 2


def test_the_due_today_sms_puts_the_deadline_first_even_in_its_short_form():
    text = one("sms", EXEMPLO, "due_today").text  # due 20/11 (a holiday), payable until 23/11
    assert "ultimo dia sem acrescimos: hoje, 23/11/2026" in text and "e o ultimo dia" not in text
    long_domain = EXEMPLO._replace(domain="padaria-e-confeitaria-do-joao.com.br")
    [(n, _)] = rendered("sms", EXEMPLO, "due_today")
    short = Renderer(Config()).render(n, long_domain, list(SAMPLE_INVOICES["exemplo"]), n.date).text
    assert "ultimo dia sem acrescimos: hoje, 23/11/2026" in short and short.endswith(STOP)


@pytest.mark.parametrize("stage", ["deletion_warning", "deletion_due"])
def test_the_deletion_sms_states_the_contracts_terms(stage):
    for account in SAMPLE_ACCOUNTS:
        text = one("sms", account, stage).text
        assert "pelo contrato" in text.lower() and "protesto" in text, text
        assert "exclusao dos dados e protesto" not in text and "serao apagados em" not in text


# --- point 11: WhatsApp ----------------------------------------------------------------------------

LATE_FEES = "multa de 2% e juros de 1% ao mês, conforme contrato; o valor atualizado está no Painel Financeiro"


def test_whatsapp_says_how_to_pay_where_the_panel_is_and_how_to_get_a_second_copy():
    text = one("whatsapp", EXEMPLO, "overdue").parts[0]
    assert "boleto" in text and "Pix" in text and "cartão" in text
    assert '"Painéis / Webmail / Ajuda" e depois "Painel Financeiro"' in text
    assert "2ª via de boleto vencido ou dúvidas? Fale conosco antes de pagar: financeiro@lucanet.com.br." in text
    full = one("whatsapp", JOAO, "reminder").parts[0]  # one screen without the terse wording
    assert "Como pagar: boleto bancário, Pix ou cartão de crédito, pelo Painel Financeiro" in full
    overdue = Renderer(Config()).render(*next((n, a, i, date(2026, 11, 7)) for n, a, i, _ in sample_cases()
                                              if a.id == "joao" and n.channel == "whatsapp" and n.stage == "overdue"))
    assert "financeiro@lucanet.com.br" in overdue.parts[0] and "2ª via de boleto vencido" in overdue.parts[0]


@pytest.mark.parametrize("config", [Config(), Config(company=replace(Config().company, late_fees=LATE_FEES))],
                         ids=["plain", "late-fees"])
def test_every_whatsapp_body_is_within_one_screen(config):
    for n, message in rendered("whatsapp", config=config):
        assert all(len(part) <= WHATSAPP_TEXT_LIMIT for part in message.parts), (n.account, n.stage)


def test_a_long_whatsapp_sends_its_invoice_list_as_the_second_message():
    message = one("whatsapp", JOAO, "suspended")  # two invoices, past a deletion date
    text, listed = message.parts
    assert "Faturas em aberto e total: na próxima mensagem." in text and "- 2026-10-joao" not in text
    assert listed.startswith("- 2026-10-joao: *R$\u00a0149,90*") and "Total em aberto: *R$\u00a0299,80*" in listed


def test_whatsapp_says_the_tutorial_comes_next():
    message = one("whatsapp", EXEMPLO, "overdue")  # first-time delinquent: the tutorial follows
    assert "Nas próximas mensagens, explicamos como funciona a nossa cobrança." in message.parts[0]
    assert "Na última mensagem" not in message.text
    assert message.parts[-1].startswith("*Como funciona") or "virada do mês" in message.parts[-1]


# --- point 12: the social DM -------------------------------------------------------------------------

def test_the_social_dm_is_administrative_and_its_staff_task_carries_the_tutorial(tmp_path):
    from notifier import channels
    dm = one("social", EXEMPLO, "overdue")  # no TUTORIAL_URL
    assert "um assunto administrativo da sua hospedagem" in dm.text and "cobrança" not in dm.text
    assert "Na próxima mensagem, explicamos como funcionam as nossas faturas." in dm.text
    channel = channels.build("social", Config(outbox=tmp_path))
    try:
        result = channel.send(dm)
    finally:
        channel.close()
    assert result.status == "task"
    [task] = [p for p in (tmp_path / "staff").rglob("*") if p.is_file()]
    written = task.read_text(encoding="utf-8")
    assert "Depois, envie também este segundo texto" in written and "Por padrão, nossas cobranças" in written
    linked = one("social", EXEMPLO, "overdue", Config(env={"TUTORIAL_URL": "https://www.lucanet.com.br/cobranca"}))
    assert "tutorial_text" not in linked.meta and "https://www.lucanet.com.br/cobranca" in linked.text


def test_check_fails_when_a_bot_would_send_social_dms_without_the_tutorial_link(cli, tmp_path):
    whatsapp = "[channels.whatsapp]\nfreeform = true\n"  # no Meta templates to miss here
    (tmp_path / "n.toml").write_text(whatsapp + "[channels.social]\nsend = true\n", encoding="utf-8")
    (tmp_path / "staff-tasks.toml").write_text(whatsapp, encoding="utf-8")
    proc = cli("--config", "n.toml", "check", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "TUTORIAL_URL: not set, so social DMs sent by a bot cannot carry the tutorial" in proc.stderr
    linked = cli("--config", "n.toml", "check", env={"TUTORIAL_URL": "https://www.lucanet.com.br/cobranca"})
    assert "TUTORIAL_URL" not in linked.stderr
    assert "TUTORIAL_URL" not in cli("--config", "staff-tasks.toml", "check").stderr  # tasks carry the text


# --- point 13: a person ---------------------------------------------------------------------------

def test_a_person_is_spoken_to_and_asked_for_name_and_cpf():
    email = one("email", JOAO, "overdue").text
    assert "da sua conta" in email and "contratados por João Pereira" not in email
    assert "informando seu nome e CPF." in email and "razão social" not in email
    whatsapp = one("whatsapp", JOAO, "overdue").text
    assert "contratados por" not in whatsapp and "razão social" not in whatsapp
    company = one("email", EXEMPLO, "overdue").text
    assert "informando o domínio, a razão social, o nome e o CPF ou CNPJ." in company


@pytest.mark.parametrize("n, message", rendered("sms", JOAO), ids=lambda v: getattr(v, "stage", ""))
def test_a_persons_sms_never_carries_their_name(n, message):
    assert "Joao" not in message.text and "Pereira" not in message.text
    assert "da sua conta Lucanet" in message.text


# --- point 14: after the deletion date --------------------------------------------------------------

def test_after_the_deletion_date_the_terms_come_with_a_way_back():
    text = one("email", JOAO, "suspended").text  # 01/12: October's deletion date, 05/11, has passed
    assert ("completou um mês em aberto em 05/11/2026: a partir dessa data, conforme o contrato, os dados da sua "
            "conta podem ser apagados e o débito levado a protesto; se pagar agora, fale conosco para confirmar a "
            "restauração.") in text
    assert "são apagados" not in text and "serão reativados" not in text


# --- point 15: subjects ------------------------------------------------------------------------------

def test_a_subject_names_the_company_when_the_account_has_no_domain():
    assert one("email", JOAO, "reminder").subject == "Lucanet: vence em 05/11: fatura de R$ 149,90"
    assert one("email", EXEMPLO, "reminder").subject.startswith("Vence em 20/11: fatura de R$ 1.234,56 da hospedagem")
