from standardwebhooks import Webhook, WebhookVerificationError


def verified_event(secret: str, body: bytes, headers: dict[str, str]) -> dict:
    """The CloudEvent a Cradle webhook carries, once its signature (any of the `v1,` ones: during a
    secret rotation both come) and its timestamp (within 5 minutes) check out. Anything else raises
    WebhookVerificationError: answer 400 and drop it. Store the event under its `webhook-id` (the
    event's id): a delivery may come twice."""
    return Webhook(secret).verify(body, headers)


__all__ = ["WebhookVerificationError", "verified_event"]
