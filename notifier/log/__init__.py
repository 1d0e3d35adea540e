"""The contact-attempt log: the append-only, hash-chained record of every attempt and staff action,
the message store its records point to, its check (`verify-log`), and what is read back from it
(history, delivery statuses, bounces, provider webhooks)."""
