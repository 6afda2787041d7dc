"""Every event's payload model, defined once for its producer and its consumers alike.

`EVENT_MODELS` maps each CloudEvents type to its model. The outbox refuses to write an event whose
type has no model or whose payload breaks it, and consumers parse `data` with the same model, so
whatever a producer can emit every consumer accepts. docs/EVENTS.md is checked against it."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.contracts import delivery, guidance, monitoring, registry, workforce
from shared.events.envelope import CloudEvent, DomainEvent

M = TypeVar("M", bound=BaseModel)


class UnknownEventType(LookupError):
    """An event type with no contract: a programming error, never bad input."""


def _index(*modules: tuple[type[DomainEvent], ...]) -> dict[str, type[DomainEvent]]:
    models: dict[str, type[DomainEvent]] = {}
    for events in modules:
        for model in events:
            if model.event_type in models:
                raise RuntimeError(f"two contracts for {model.event_type}")
            models[model.event_type] = model
    return models


EVENT_MODELS: dict[str, type[DomainEvent]] = _index(
    registry.EVENTS, workforce.EVENTS, monitoring.EVENTS, guidance.EVENTS, delivery.EVENTS
)


def contract_for(event_type: str) -> type[DomainEvent]:
    try:
        return EVENT_MODELS[event_type]
    except KeyError:
        raise UnknownEventType(f"no contract for event type {event_type!r} (shared/contracts)") from None


def payload_of(event: CloudEvent, model: type[M]) -> M:
    """A consumer's reading of `event.data`, with the producer's own model (or the base model a
    family of events shares, e.g. registry.FacilityFacts)."""
    if not issubclass(contract_for(event.type), model):
        raise UnknownEventType(f"{event.type} is not a {model.__name__}")
    return model.model_validate(event.data)


__all__ = ["EVENT_MODELS", "UnknownEventType", "ValidationError", "contract_for", "payload_of"]
