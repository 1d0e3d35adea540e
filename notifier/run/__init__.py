"""The daily run: the cycle (plan, claim, send, log), the workers that call the providers, delivery
of one notice, rendering of the messages, and the daemon that schedules it all."""
