"""Ban checks in bulk: up to 1,000 ID numbers per call, each answered and audited."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.workforce.deps import WorkforceDep
from services.workforce.schemas import BanCheckBatchRequest, BanCheckBatchResult
from services.workforce.service import ban_checks
from shared.identity import AuthenticatedDep, PurposeDep, RequestIdDep

router = APIRouter(prefix="/v1", tags=["workforce"])


@router.post("/ban-checks/batch", response_model=BanCheckBatchResult)
async def ban_check_batch(
    body: BanCheckBatchRequest,
    request: Request,
    caller: AuthenticatedDep,
    workforce: WorkforceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
) -> BanCheckBatchResult:
    """Are these people banned? A 200 answers every valid number (by its index, masked) and lists
    the invalid ones by index in `rejected`; one audit row per number, refused and invalid ones too,
    all committed before the answer. More than 1,000 numbers is a 422."""
    return await ban_checks.check_bans(
        engine=request.app.state.engine,
        audit=request.app.state.check_audit,
        workforce=workforce,
        caller=caller,
        id_numbers=body.id_numbers,
        purpose=purpose,
        request_id=request_id,
    )
