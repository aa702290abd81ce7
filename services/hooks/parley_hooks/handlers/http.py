"""HTTP resource /v1/subscriptions: webhook subscriptions, their delivery log and replay (owners and managers)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from parley_common.auth import MANAGERS, Principal, require_roles
from parley_common.bounds import PathId
from parley_common.errors import documented_errors
from parley_hooks.handlers import schemas as s
from parley_hooks.handlers.subscriptions import SubscriptionService

Manager = Annotated[Principal, Depends(require_roles(*MANAGERS))]
NOT_FOUND = {404: "subscription_not_found"}
DELIVERY_NOT_FOUND = {404: "subscription_not_found, delivery_not_found"}
URL_REFUSED = ("url_invalid, url_too_long, url_scheme_not_allowed, address_not_allowed (loopback, private, "
               "link-local), unknown_event_type, validation_failed")


def subscriptions_router(service: SubscriptionService) -> APIRouter:
    router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])

    @router.post("", status_code=201, summary="Subscribe a URL to event types; answers the signing secret once",
                 responses=documented_errors({409: "too_many_subscriptions", 422: URL_REFUSED}))
    async def create(body: s.SubscriptionCreate, caller: Manager) -> s.SubscriptionCreated:
        return await service.create(caller, body)

    @router.get("", summary="The tenant's subscriptions", responses=documented_errors({}))
    async def list_all(caller: Manager) -> s.SubscriptionList:
        return await service.all_of(caller)

    @router.get("/{subscription_id}", summary="One subscription: status, why it is paused, deliveries waiting",
                responses=documented_errors(NOT_FOUND))
    async def get(subscription_id: PathId, caller: Manager) -> s.Subscription:
        return await service.get(caller, subscription_id)

    @router.patch("/{subscription_id}", summary="Change URL, event types, secret or description; pause or resume",
                  responses=documented_errors({**NOT_FOUND, 422: URL_REFUSED}))
    async def update(subscription_id: PathId, body: s.SubscriptionUpdate, caller: Manager) -> s.Subscription:
        return await service.update(caller, subscription_id, body)

    @router.delete("/{subscription_id}", status_code=204, response_class=Response,
                   summary="Delete a subscription and its deliveries", responses=documented_errors(NOT_FOUND))
    async def delete(subscription_id: PathId, caller: Manager) -> Response:
        await service.delete(caller, subscription_id)
        return Response(status_code=204)

    @router.get("/{subscription_id}/deliveries", summary="The delivery log, newest first",
                responses=documented_errors(NOT_FOUND))
    async def deliveries(subscription_id: PathId, caller: Manager,
                         status: Literal["pending", "delivered"] | None = None,
                         before: Annotated[datetime | None, Query(description="created before (paging)")] = None,
                         limit: Annotated[int, Query(ge=1, le=200)] = 50) -> s.DeliveryList:
        return await service.deliveries(caller, subscription_id, status, before, limit)

    @router.get("/{subscription_id}/deliveries/{delivery_id}", summary="One delivery, its attempts and its event",
                responses=documented_errors(DELIVERY_NOT_FOUND))
    async def delivery(subscription_id: PathId, delivery_id: PathId, caller: Manager) -> s.DeliveryWithEvent:
        return await service.delivery(caller, subscription_id, delivery_id)

    @router.post("/{subscription_id}/deliveries/{delivery_id}/replay", status_code=202,
                 summary="Deliver this delivery's event again (after what its key has queued)",
                 responses=documented_errors(DELIVERY_NOT_FOUND))
    async def replay_one(subscription_id: PathId, delivery_id: PathId, caller: Manager) -> s.Replayed:
        return await service.replay_one(caller, subscription_id, delivery_id)

    @router.post("/{subscription_id}/replay", status_code=202,
                 summary="Deliver again what was delivered in a time window (at most 1,000)",
                 responses=documented_errors({**NOT_FOUND, 422: "invalid_window, validation_failed"}))
    async def replay_window(subscription_id: PathId, body: s.ReplayWindow, caller: Manager) -> s.Replayed:
        return await service.replay_window(caller, subscription_id, body)

    return router
