"""Events the delivery service publishes (about a client's own subscriptions). Their payload models
live in shared/contracts/delivery.py, one definition for this producer and every consumer
(docs/EVENTS.md)."""

from __future__ import annotations

from shared.contracts.delivery import SubscriptionDisabled

__all__ = ["SubscriptionDisabled"]
