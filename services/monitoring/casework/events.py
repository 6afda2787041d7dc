"""The casework's own events about findings under review (docs/EVENTS.md). Neither names a person
nor bans anyone: only `incident.confirmed`, published when a finding is final, does. Their payload
models live with every other event's, in shared/contracts/monitoring.py."""

from __future__ import annotations

from shared.contracts.monitoring import FindingProposed, FindingRejected

__all__ = ["FindingProposed", "FindingRejected"]
