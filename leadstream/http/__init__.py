"""The HTTP side: Kapso/Meta webhooks (the producer) and the bot/operator API."""
