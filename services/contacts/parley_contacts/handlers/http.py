"""HTTP resource /v1/contacts: thin routes over the use cases; every call is scoped to the caller's tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from parley_common.auth import MANAGERS, Principal, Role, require_roles
from parley_common.bounds import PathId
from parley_common.errors import ApiError, documented_errors
from parley_contacts.adapters.contacts_repo import VocabularyRepository
from parley_contacts.adapters.pictures import PictureFetcher, PictureUnavailable
from parley_contacts.domain.errors import InvalidInput
from parley_contacts.domain.pictures import fetchable_picture
from parley_contacts.domain.search import Condition, Criteria, conditions, decode_cursor, encode_cursor
from parley_contacts.handlers import schemas as s
from parley_contacts.handlers.card_service import ContactsService, invalid
from parley_contacts.handlers.notes import CommentsService, FieldsService
from parley_contacts.handlers.profiles import ProfileLookups

TEAM = require_roles(Role.OWNER, Role.MANAGER, Role.AGENT, Role.INTEGRATION)
STAFF = require_roles(Role.OWNER, Role.MANAGER, Role.AGENT)
SUPERVISORS = require_roles(*MANAGERS)
EXPORTERS = require_roles(*MANAGERS, Role.INTEGRATION)
Team = Annotated[Principal, Depends(TEAM)]
# A picture is kept by the agent's browser for an hour (its own cache: private); it is never a document.
PICTURE_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": "default-src 'none'"}


@dataclass(frozen=True)
class Services:
    contacts: ContactsService
    fields: FieldsService
    comments: CommentsService
    vocabulary: VocabularyRepository
    profiles: ProfileLookups
    pictures: PictureFetcher


def correlation(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", "")) or "none"


def search_criteria(
    phone: Annotated[str | None, Query(max_length=32, description="E.164 prefix with the country code")] = None,
    name: Annotated[str | None, Query(max_length=128, description="prefix of any word, any case or accents")] = None,
    user_id: Annotated[str | None, Query(max_length=512, description="a channel user id (PSID, wa_id…)")] = None,
    external_id: Annotated[str | None, Query(max_length=256)] = None,
    username: Annotated[str | None, Query(max_length=256)] = None,
    email: Annotated[str | None, Query(max_length=254)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    field: Annotated[str | None, Query(max_length=64, description="custom field name (with `value`)")] = None,
    value: Annotated[str | None, Query(max_length=1024)] = None,
) -> list[Condition]:
    try:
        return conditions(Criteria(phone, name, user_id, external_id, username, email, label, field, value))
    except InvalidInput as exc:
        raise invalid(exc) from None


Conditions = Annotated[list[Condition], Depends(search_criteria)]


def contacts_router(services: Services) -> APIRouter:
    router = APIRouter(prefix="/v1/contacts", tags=["contacts"])
    svc = services.contacts
    _reads(router, services)

    @router.post("", status_code=201, response_model=s.ContactOut, summary="Create a client by phone number")
    async def create(body: s.CreateContact, request: Request, who: Team) -> s.ContactOut:
        return s.ContactOut.of(await svc.create(who, body.model_dump(), correlation(request)))

    @router.patch("/{contact_id}", response_model=s.ContactOut, summary="Edit card fields")
    async def patch(contact_id: PathId, body: s.PatchContact, request: Request, who: Team) -> s.ContactOut:
        changes = body.model_dump(exclude_unset=True)
        return s.ContactOut.of(await svc.patch(who, contact_id, changes, correlation(request)))

    @router.post("/{contact_id}/labels", response_model=s.ContactOut, summary="Add and remove labels")
    async def labels(contact_id: PathId, body: s.LabelsChange, request: Request, who: Team) -> s.ContactOut:
        card = await svc.change_labels(who, contact_id, body.add, body.remove, correlation(request))
        await services.vocabulary.remember(who.tenant_id, "label", body.add)
        return s.ContactOut.of(card)

    @router.put("/{contact_id}/fields/{name}", response_model=s.ContactOut, summary="Set a custom field")
    async def set_field(contact_id: PathId, name: PathId, body: s.FieldValue, request: Request,
                        who: Team) -> s.ContactOut:
        card = await services.fields.set(who, contact_id, name, body.type, body.value, correlation(request))
        return s.ContactOut.of(card)

    @router.delete("/{contact_id}/fields/{name}", response_model=s.ContactOut, summary="Remove a custom field")
    async def remove_field(contact_id: PathId, name: PathId, request: Request, who: Team) -> s.ContactOut:
        return s.ContactOut.of(await services.fields.remove(who, contact_id, name, correlation(request)))

    @router.post("/{contact_id}/block", response_model=s.ContactOut, summary="Block identities on a channel")
    async def block(contact_id: PathId, body: s.BlockRequest, request: Request,
                    who: Annotated[Principal, Depends(STAFF)]) -> s.ContactOut:
        card = await svc.set_blocked(who, contact_id, body.model_dump(), True, correlation(request))
        return s.ContactOut.of(card)

    @router.post("/{contact_id}/unblock", response_model=s.ContactOut, summary="Unblock (owners and managers)")
    async def unblock(contact_id: PathId, body: s.BlockRequest, request: Request,
                      who: Annotated[Principal, Depends(SUPERVISORS)]) -> s.ContactOut:
        card = await svc.set_blocked(who, contact_id, body.model_dump(), False, correlation(request))
        return s.ContactOut.of(card)

    @router.post("/{contact_id}/refresh-profile", response_model=s.ContactOut,
                 summary="Read the customer's name and picture from the platform again (Messenger, Instagram)",
                 responses=documented_errors({404: "contact_not_found, contact_merged", 422: "no_platform_profile",
                                               502: "profile_unavailable (details.reason)"}))
    async def refresh_profile(contact_id: PathId, request: Request, who: Team) -> s.ContactOut:
        return s.ContactOut.of(await services.profiles.refresh(who, contact_id, correlation(request)))

    @router.post("/{contact_id}/merge", response_model=s.ContactOut, summary="Fold another contact into this one")
    async def merge(contact_id: PathId, body: s.MergeRequest, request: Request,
                    who: Annotated[Principal, Depends(STAFF)]) -> s.ContactOut:
        return s.ContactOut.of(await svc.merge(who, contact_id, body.other_contact_id, correlation(request)))

    @router.post("/{contact_id}/comments", status_code=201, response_model=s.CommentOut, summary="Add a comment")
    async def comment(contact_id: PathId, body: s.CommentIn, request: Request, who: Team) -> s.CommentOut:
        return _comment(await services.comments.add(who, contact_id, body.text, body.reply_to, correlation(request)))

    return router


def _reads(router: APIRouter, services: Services) -> None:
    svc = services.contacts

    @router.get("/search", response_model=s.ContactPage, summary="Search, newest activity first")
    async def search(where: Conditions, who: Team, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     cursor: Annotated[str | None, Query(max_length=200)] = None) -> s.ContactPage:
        try:
            after = decode_cursor(cursor) if cursor else None
        except InvalidInput as exc:
            raise invalid(exc) from None
        cards = await svc.repo.search(who.tenant_id, where, limit + 1, after, svc.now())
        more = len(cards) > limit
        items = [s.ContactOut.of(card) for card in await svc.visible(who, cards[:limit])]
        return s.ContactPage(items=items, next_cursor=encode_cursor(cards[limit - 1]["activity_key"]) if more else None)

    @router.get("/export", summary="Export the matching contacts as JSON Lines",
                response_class=StreamingResponse, responses={200: {"content": {"application/x-ndjson": {}}}})
    async def export(where: Conditions, who: Annotated[Principal, Depends(EXPORTERS)]) -> Response:
        async def lines() -> AsyncIterator[bytes]:
            async for card in svc.repo.stream(who.tenant_id, where, svc.now()):
                yield (s.ContactOut.of(card).model_dump_json() + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @router.get("/mentions", response_model=list[s.MentionOut],
                summary="Comments that mention the caller (@login), newest first, on contacts they may see")
    async def mentions(who: Team, limit: Annotated[int, Query(ge=1, le=100)] = 50) -> list[s.MentionOut]:
        return [s.MentionOut.model_validate({
            **comment, "id": comment["_id"],
            "contact_name": card.get("display_name") or next(iter(card.get("phones") or []), None)})
            for comment, card in await services.comments.mentions_of(who, limit)]

    @router.get("/labels", response_model=list[s.VocabularyItem], summary="Labels used in this tenant")
    async def labels(who: Team) -> list[dict[str, Any]]:
        return await services.vocabulary.names(who.tenant_id, "label")

    @router.get("/fields", response_model=list[s.VocabularyItem], summary="Custom field names of this tenant")
    async def fields(who: Team) -> list[dict[str, Any]]:
        return await services.vocabulary.names(who.tenant_id, "field")

    @router.get("/{contact_id}", response_model=s.ContactOut, summary="The contact card")
    async def get(contact_id: PathId, who: Team) -> s.ContactOut:
        return s.ContactOut.of(await svc.get(who, contact_id))

    @router.get("/{contact_id}/avatar", response_class=Response, summary="The contact's picture from the platform",
                description="The picture Viber's webhook or Meta's Graph API gave (`avatar_url`), fetched by "
                            "contacts (≤ 1 MiB, JPEG / PNG / GIF / WebP by content), so a screen shows it from its "
                            "own origin. A URL an agent set is never fetched (`no_avatar`).",
                responses={200: {"content": {"image/*": {}}},
                           **documented_errors({404: "contact_not_found, no_avatar, avatar_unavailable (the "
                                                     "platform refused it: details.reason)",
                                                502: "avatar_unavailable (the platform did not answer)"})})
    async def avatar(contact_id: PathId, who: Team) -> Response:
        url = fetchable_picture(await svc.get(who, contact_id))
        if url is None:
            raise ApiError(404, "no_avatar", "the contact has no picture from the platform")
        try:
            picture = await services.pictures.fetch(url)
        except PictureUnavailable as failure:
            raise ApiError(404 if failure.lasting else 502, "avatar_unavailable",
                           "the platform did not give the picture", {"reason": failure.reason}) from None
        return Response(picture.content, media_type=picture.media_type, headers=PICTURE_HEADERS)

    @router.get("/{contact_id}/comments", response_model=list[s.CommentOut], summary="Comments, oldest first")
    async def comments(contact_id: PathId, who: Team) -> list[s.CommentOut]:
        return [_comment(doc) for doc in await services.comments.list(who, contact_id)]


def _comment(doc: dict[str, Any]) -> s.CommentOut:
    return s.CommentOut.model_validate({**doc, "id": doc["_id"]})


__all__ = ["Services", "contacts_router"]
