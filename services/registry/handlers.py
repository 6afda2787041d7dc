"""Events the registry consumes: none yet."""

from shared.events.consumer import Handler

HANDLERS: dict[str, Handler] = {}
