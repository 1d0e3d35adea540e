"""WhatsApp over Twilio: an approved template, or free-form text where WhatsApp allows it.

A business may start a WhatsApp conversation only with a template approved by Meta (Twilio
refuses free-form text outside the customer's 24-hour service window with error 63016), so a
message with a `content_sid` always goes as that template. Free-form text goes only when the
operator says it may (`freeform = true`: Twilio's sandbox, or a service window), split into
Twilio's 1,600-character bodies.

Options (`[channels.whatsapp]`):
- `freeform` (default false): send `text` when the message has no template. Without either, the
  message is BLOCKED (our configuration, not the customer's contact: `code` names the setting) and
  `check()` names every stage of the ladder that uses WhatsApp without a template.
- `sms_fallback` (default true): when Twilio says the number cannot get WhatsApp (21211, 63003),
  send the message's `meta["sms_text"]` by SMS instead. The renderer puts that short GSM-7 text
  there only where SMS is allowed (so an account that opted out of SMS gets none); without it,
  the WhatsApp failure stands. The result is the SMS's, and its evidence records both attempts.
- `timeout`: see channels/_twilio.py.
"""
from __future__ import annotations

import json
from dataclasses import replace

from notifier.run.render import split_whatsapp

from . import BLOCKED, ChannelError, Message, Result, build, decode_payload, encode_payload, register
from ._twilio import INVALID_NUMBER, NOT_ON_WHATSAPP, TwilioChannel, outbox_fields, request_fields

MAX_BODY = 1600  # Twilio's limit for one WhatsApp body
PREFIX = "whatsapp:"
# Codes that say this number has no WhatsApp, where an SMS may still arrive. Not 63016 (a missing
# template is ours to fix, and staff should see it) nor 21610 (the customer said STOP).
FALLBACK_CODES = frozenset({INVALID_NUMBER, NOT_ON_WHATSAPP})


@register
class WhatsAppChannel(TwilioChannel):
    name = "whatsapp"
    from_var = "TWILIO_WHATSAPP_FROM"
    from_prefix = PREFIX

    def __init__(self, config, options=None):
        super().__init__(config, options)
        for key in ("freeform", "sms_fallback"):
            if not isinstance(self.options.get(key, False), bool):
                raise ChannelError(f"channels.whatsapp.{key}: must be true or false, not {self.options[key]!r}")
        self.freeform = self.options.get("freeform", False)
        self.sms_fallback = self.options.get("sms_fallback", True)

    def prepare(self, message: Message) -> Message:
        """The request fields posted to Twilio, one set per message (the template, or each body),
        and the SMS fallback's, as JSON. No payload when there is nothing it may send."""
        number = message.recipient.removeprefix(PREFIX)
        to = PREFIX + number
        if message.content_sid:
            template = {"ContentSid": message.content_sid}
            if message.content_variables:
                template["ContentVariables"] = json.dumps(dict(message.content_variables), ensure_ascii=False)
            parts = [template]
        elif self.freeform:
            # The renderer's own parts (the Pix code alone in one, so a phone copies just it).
            parts = [{"Body": body} for text in (message.parts or (message.text,))
                     for body in split_whatsapp(text, MAX_BODY)]
        else:
            return message
        sender = {} if self.outbox else {"From": self.sender}
        payload = {"requests": [{"To": to, **sender, **part, **self.callback_fields()} for part in parts]}
        if self.sms_fallback and message.meta.get("sms_text"):
            payload["sms_fallback"] = {"To": number, "Body": message.meta["sms_text"]}
        return replace(message, payload=encode_payload(payload))

    def send(self, message: Message) -> Result:
        number = message.recipient.removeprefix(PREFIX)
        to = PREFIX + number
        if message.payload is None:
            message = self.prepare(message)
        blocked = self.blocked(message)
        if blocked is not None:
            return blocked
        requests = decode_payload(message)["requests"]
        if self.outbox:
            return self.write_outbox(to, {"messages": [outbox_fields(r) for r in requests]}, message.meta)
        result = self._send_parts(to, [request_fields(r) for r in requests])
        if not result.ok and result.code in FALLBACK_CODES and self.sms_fallback:
            return self._fallback(message, number, result)
        return result

    def blocked(self, message: Message) -> Result | None:
        """Prepared without a payload: no template for its stage, and free-form text not allowed."""
        if message.payload is not None:
            return None
        stage = message.meta.get("stage", "?")
        return Result(BLOCKED, self.provider, code=f"config:whatsapp.templates.{stage}", detail=_missing_template(stage))

    def check(self, connect: bool = False) -> list[str]:
        return self.missing_templates() + super().check(connect)

    def missing_templates(self) -> list[str]:
        """A problem for each stage of the ladder that sends WhatsApp but has no approved
        template, when free-form text is not allowed: every such message would be blocked."""
        return [_missing_template(stage) for stage in self._untemplated(by_ladder=True)]

    def warnings(self) -> list[str]:
        """`escalate --channel whatsapp` sends the account's current stage, which may be any
        stage with a customer message (`suspended` too): each one the ladder does not send on
        WhatsApp and that has no template, as an escalation that would be blocked."""
        return [_missing_template(stage, by_ladder=False) for stage in self._untemplated(by_ladder=False)]

    def _untemplated(self, by_ladder: bool) -> list[str]:
        """The stages with a customer message and no template, that the ladder does (or does not)
        send on WhatsApp; none when free-form text is allowed."""
        templates = self.options.get("templates", {})
        return [] if self.freeform else [
            stage.name for stage in self.config.ladder
            if set(stage.channels + stage.first_time_channels) - {"staff"}
            and (self.name in stage.channels + stage.first_time_channels) == by_ladder
            and not (isinstance(templates, dict) and stage.name in templates)]

    def _send_parts(self, to: str, parts: list[dict]) -> Result:
        extra = {"content_sid": parts[0]["ContentSid"]} if "ContentSid" in parts[0] else {}
        answers = []
        for i, fields in enumerate(parts):
            answer = self.create(to, fields)
            if isinstance(answer, Result):
                sids = [a["sid"] for a in answers]
                evidence = {**answer.evidence, "to": to, "from": self.sender, "sids": sids, "parts": len(parts), **extra}
                if not answers:
                    return replace(answer, evidence=evidence)
                # The customer already has the first parts: sending all again would repeat them,
                # so this is not retried; staff see a permanent failure and finish by hand.
                return replace(answer, provider_id=",".join(sids), permanent=True, evidence=evidence,
                               detail=f"part {i + 1} of {len(parts)} failed after {i} were sent: {answer.detail}")
            answers.append(answer)
        return self.sent(to, answers, parts=len(parts), **extra)

    def _fallback(self, message: Message, number: str, failed: Result) -> Result:
        sms_text = decode_payload(message).get("sms_fallback", {}).get("Body")
        if not sms_text:
            return replace(failed, evidence={**failed.evidence, "sms_fallback": "not tried: the message has no sms_text"})
        try:
            sms = build("sms", self.config)
        except ChannelError as exc:
            return replace(failed, evidence={**failed.evidence, "sms_fallback": f"not possible: {exc}"})
        try:
            result = sms.send(Message(channel="sms", recipient=number, text=sms_text, meta=message.meta))
        finally:
            sms.close()
        outcome = "sent by SMS instead" if result.ok else "the SMS fallback failed too"
        return replace(
            result,
            detail=f"WhatsApp refused {number} ({failed.code}: {failed.detail}); {outcome}: {result.detail}",
            evidence={
                "fallback": "sms",
                "whatsapp": {"code": failed.code, "detail": failed.detail, **failed.evidence},
                "sms": dict(result.evidence),
            },
        )


def _templates_key(stage: str) -> str:
    return f"channels.whatsapp.templates.{stage}"


def _missing_template(stage: str, by_ladder: bool = True) -> str:
    if not by_ladder:
        return (f"{_templates_key(stage)}: no approved Content template for stage {stage}: an escalation "
                f"on WhatsApp at that stage (`escalate --channel whatsapp`) would be blocked; submit "
                f"docs/whatsapp-templates/{stage}.json to Meta and configure its content_sid")
    return (f"{_templates_key(stage)}: no approved Content template for stage {stage}, and freeform = false: "
            f"its WhatsApp messages are blocked; submit docs/whatsapp-templates/{stage}.json to Meta and "
            "configure its content_sid, or set freeform = true under [channels.whatsapp] where free-form "
            "text is allowed")
