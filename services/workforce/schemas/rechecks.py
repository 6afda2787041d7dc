"""The yearly recheck of everyone employed against the bans, and the background checks it opened."""

from __future__ import annotations

from pydantic import BaseModel


class RecheckSummary(BaseModel):
    year: int
    employed: int
    rechecked: int
    banned_found: int
    background_checks_opened: int
    background_checks_pending: int
    background_checks_clear: int
    background_checks_flagged: int
