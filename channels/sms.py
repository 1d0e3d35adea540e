"""SMS over Twilio: plain text from TWILIO_SMS_FROM to an E.164 number.

Also WhatsApp's fallback for a number WhatsApp cannot reach (see channels/whatsapp.py). The
renderer keeps the text to one or two GSM-7 segments; Twilio joins longer bodies into one
concatenated SMS itself, so nothing is split here.
"""
from __future__ import annotations

from dataclasses import replace

from . import Message, Result, register
from ._twilio import TwilioChannel


@register
class SmsChannel(TwilioChannel):
    name = "sms"
    from_var = "TWILIO_SMS_FROM"

    def send(self, message: Message) -> Result:
        to = message.recipient
        if self.outbox:
            return self.write_outbox(to, {"body": message.text}, message.meta)
        answer = self.create(to=to, body=message.text)
        if isinstance(answer, Result):
            return replace(answer, evidence={**answer.evidence, "to": to, "from": self.sender})
        return self.sent(to, [answer])
