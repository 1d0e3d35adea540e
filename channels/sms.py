"""SMS over Twilio: plain text from TWILIO_SMS_FROM to an E.164 number.

Also WhatsApp's fallback for a number WhatsApp cannot reach (see channels/whatsapp.py). The
renderer keeps the text to one or two GSM-7 segments; Twilio joins longer bodies into one
concatenated SMS itself, so nothing is split here.
"""
from __future__ import annotations

from dataclasses import replace

from . import Message, Result, decode_payload, encode_payload, register
from ._twilio import TwilioChannel, outbox_fields, request_fields


@register
class SmsChannel(TwilioChannel):
    name = "sms"
    from_var = "TWILIO_SMS_FROM"

    def prepare(self, message: Message) -> Message:
        """The request fields posted to Twilio, as JSON."""
        sender = {} if self.outbox else {"From": self.sender}
        request = {"To": message.recipient, **sender, "Body": message.text, **self.callback_fields()}
        return replace(message, payload=encode_payload({"requests": [request]}))

    def send(self, message: Message) -> Result:
        to = message.recipient
        if message.payload is None:
            message = self.prepare(message)
        [request] = decode_payload(message)["requests"]
        if self.outbox:
            return self.write_outbox(to, outbox_fields(request), message.meta)
        answer = self.create(to, request_fields(request))
        if isinstance(answer, Result):
            return replace(answer, evidence={**answer.evidence, "to": to, "from": self.sender})
        return self.sent(to, [answer])
