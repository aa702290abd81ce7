"""POST /v1/media/{id}/retry: download a failed inbound attachment again, through the retries topic (the router
shows it pending at once from `MediaPending`, then stored or failed with the reason)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from parley_common.auth import Principal, Role, require_roles
from parley_common.bounds import PathId
from parley_common.errors import ApiError, documented_errors
from parley_media.adapters.media_repository import MediaRepository
from parley_media.domain.model import MediaState
from parley_media.handlers.fetching import Fetcher

RETRIERS = (Role.OWNER, Role.MANAGER, Role.AGENT)


def retry_router(repo: MediaRepository, fetcher: Fetcher) -> APIRouter:
    router = APIRouter(prefix="/v1/media", tags=["media"])

    @router.post("/{media_id}/retry", status_code=202, summary="Download a failed attachment again",
                 responses=documented_errors({404: "media_not_found", 409: "not_failed, not_retryable"}))
    async def retry(media_id: PathId, principal: Annotated[Principal, Depends(require_roles(*RETRIERS))]
                    ) -> dict[str, Any]:
        record = await repo.get(principal.tenant_id, media_id)
        if record is None:
            raise ApiError(404, "media_not_found", "no such media")
        if record["state"] != MediaState.FAILED.value:
            raise ApiError(409, "not_failed", f"the attachment is {record['state']}, not failed")
        part = record.get("part") or {}
        if not record.get("provider_message_id") or not record.get("external_user_id") or \
                part.get("source") not in ("provider_id", "url"):
            raise ApiError(409, "not_retryable", "only a customer's attachment the channel serves can be fetched "
                                                 "again (not an upload, an e-mail attachment or an older record)")
        reopened = await repo.reopen_failed(principal.tenant_id, media_id)
        if reopened is None:
            raise ApiError(409, "not_failed", "a retry of this attachment is already under way")
        await fetcher.retry_failed(reopened, principal.login)
        return {"id": media_id, "state": MediaState.PENDING.value}

    return router
