"""Agency systems over HTTP: signed EIDO-shaped webhooks out, signed status updates in.

No Telegram and no SQL here: the webhook client is a ``Deliverer`` of the outbox
(``client.WebhookDeliverer``), the inbound endpoint (``server.AgencyApi``) calls the agency
service. Both sign with HMAC-SHA256 over ``"<timestamp>.<body>"`` (``signing``); the wire
format is documented in ``docs/agency-webhook.md``.
"""
