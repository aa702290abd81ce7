"""Media metadata (collection `media`) and blob references (collection `blobs`): every MongoDB query of media.

A blob document (`_id` = tenant|sha256) names the object key holding that content and the media ids that use
it. Its key carries a random generation, never reused: once the document is gone, its key is garbage, so a
sweeper that crashed half-way can always decide safely whether an object may be deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from parley_common.ids import new_id
from parley_common.mongo import insert_new
from parley_media.adapters.coalescer import Coalescer
from parley_media.domain.model import MediaState, blob_ref_id

Doc = dict[str, Any]


@dataclass(frozen=True)
class BlobRef:
    id: str
    key: str
    ready: bool
    has_thumbnail: bool


class MediaRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._media = db["media"]
        self._blobs = db["blobs"]
        # Concurrent downloads' writes go to the database together (see coalescer.py).
        self._inserts: Coalescer[Doc, Doc] = Coalescer(self._insert_pending_many)
        self._references: Coalescer[tuple[str, str, str], BlobRef] = Coalescer(self._reference_many)
        self._updates: Coalescer[UpdateOne, None] = Coalescer(self._update_many)

    async def ensure_indexes(self) -> None:
        await self._media.create_index([("tenant_id", ASCENDING), ("_id", ASCENDING)])
        await self._media.create_index([("state", ASCENDING), ("expires_at", ASCENDING)])
        await self._media.create_index([("state", ASCENDING), ("received_at", ASCENDING)])
        await self._blobs.create_index([("key", ASCENDING)])
        await self._blobs.create_index([("tenant_id", ASCENDING), ("refs", ASCENDING)])

    # --- media records -------------------------------------------------------------------------------------

    async def open_pending(self, media_id: str, fields: Doc) -> Doc:
        """Create the record as pending unless it exists; answers the record as it now is. An insert first
        (the common case is new media; a redelivery pays one extra read), coalesced with concurrent ones."""
        doc = {"_id": media_id, **fields, "state": MediaState.PENDING.value, "legal_hold": False, "attempts": 0}
        return await self._inserts.submit(doc)

    async def _insert_pending_many(self, docs: list[Doc]) -> list[Doc]:
        existed = {docs[index]["_id"] for index in await insert_new(self._media, docs)}
        if not existed:
            return docs
        current = {doc["_id"]: doc async for doc in self._media.find({"_id": {"$in": list(existed)}})}
        return [current.get(doc["_id"], doc) if doc["_id"] in existed else doc for doc in docs]

    async def get(self, tenant_id: str, media_id: str) -> Doc | None:
        """Every read names the tenant: another tenant's id answers nothing."""
        return await self._media.find_one({"_id": media_id, "tenant_id": tenant_id})

    async def record_attempt(self, media_id: str, attempt: int, error: str) -> None:
        await self._media.update_one({"_id": media_id, "state": MediaState.PENDING.value},
                                     {"$set": {"attempts": attempt, "last_error": error}})

    async def mark_stored(self, media_id: str, fields: Doc) -> None:
        await self._updates.submit(UpdateOne({"_id": media_id, "state": MediaState.PENDING.value},
                                             {"$set": {**fields, "state": MediaState.STORED.value}}))

    async def _update_many(self, updates: list[UpdateOne]) -> list[None]:
        await self._media.bulk_write(updates, ordered=False)
        return [None] * len(updates)

    async def reopen_failed(self, tenant_id: str, media_id: str) -> Doc | None:
        """A failed record back to pending, attempts from zero (a retry someone asked for); None when it is not
        failed (any more: a concurrent retry won)."""
        return await self._media.find_one_and_update(
            {"_id": media_id, "tenant_id": tenant_id, "state": MediaState.FAILED.value},
            {"$set": {"state": MediaState.PENDING.value, "attempts": 0},
             "$unset": {"failure_reason": "", "last_error": ""}}, return_document=ReturnDocument.AFTER)

    async def mark_failed(self, media_id: str, reason: str, detail: str | None, attempts: int) -> None:
        await self._media.update_one(
            {"_id": media_id, "state": MediaState.PENDING.value},
            {"$set": {"state": MediaState.FAILED.value, "failure_reason": reason, "last_error": detail,
                      "attempts": attempts}},
        )

    async def set_legal_hold(self, tenant_id: str, media_id: str, hold: bool) -> bool:
        result = await self._media.update_one({"_id": media_id, "tenant_id": tenant_id},
                                              {"$set": {"legal_hold": hold}})
        return result.matched_count == 1

    # --- the sweeper's claims ------------------------------------------------------------------------------

    async def claim_due(self, now: datetime, lease_until: datetime, owner: str, pending_before: datetime) -> Doc | None:
        """Atomically take one record to expire (due, not on hold) or to abandon (pending too long), or one a
        crashed sweeper left half-done (lease run out). Several replicas never hold the same record."""
        free = {"$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}]}
        due = {"state": MediaState.STORED.value, "expires_at": {"$lte": now}, "legal_hold": {"$ne": True}}
        resumed = {"state": MediaState.EXPIRING.value}
        stale = {"state": MediaState.PENDING.value, "received_at": {"$lte": pending_before}}
        return await self._media.find_one_and_update(
            {"$and": [free, {"$or": [due, resumed, stale]}]},
            {"$set": {"lease_until": lease_until, "lease_owner": owner}},
            return_document=ReturnDocument.AFTER,
        )

    async def mark_expiring(self, media_id: str, owner: str) -> None:
        await self._media.update_one({"_id": media_id, "lease_owner": owner, "state": MediaState.STORED.value},
                                     {"$set": {"state": MediaState.EXPIRING.value}})

    async def finish_claim(self, media_id: str, owner: str, state: MediaState, fields: Doc) -> bool:
        result = await self._media.update_one(
            {"_id": media_id, "lease_owner": owner},
            {"$set": {**fields, "state": state.value}, "$unset": {"lease_until": "", "lease_owner": ""}},
        )
        return result.modified_count == 1

    # --- blob references -----------------------------------------------------------------------------------

    async def reference_blob(self, tenant_id: str, sha256: str, media_id: str) -> BlobRef:
        """Add `media_id` to the users of this content's blob, creating the blob document (and its key) when
        none is live. Idempotent: a retry adds the same id once. Coalesced with concurrent calls."""
        return await self._references.submit((tenant_id, sha256, media_id))

    @staticmethod
    def _reference_update(tenant_id: str, sha256: str, media_id: str) -> tuple[Doc, Doc]:
        return (
            {"_id": blob_ref_id(tenant_id, sha256)},
            {"$addToSet": {"refs": media_id},
             "$setOnInsert": {"tenant_id": tenant_id, "sha256": sha256, "ready": False,
                              "key": f"{tenant_id}/{sha256}/{new_id()[:12]}"}},
        )

    async def _reference_many(self, items: list[tuple[str, str, str]]) -> list[BlobRef]:
        try:
            # Ordered: two uses of one content in the same batch join one document, one after the other.
            operations = [UpdateOne(*self._reference_update(*item), upsert=True) for item in items]
            await self._blobs.bulk_write(operations, ordered=True)
        except BulkWriteError:  # two first writers raced on an upsert: settle each one alone
            return [await self._reference_one(*item) for item in items]
        ids = [blob_ref_id(tenant_id, sha256) for tenant_id, sha256, _ in items]
        # Read back the documents we joined (a sweeper cannot delete one while it lists us; if it deleted one
        # just before, the upsert created a new one with a new key).
        docs = {doc["_id"]: doc async for doc in self._blobs.find({"_id": {"$in": ids}})}
        refs = []
        for (tenant_id, sha256, media_id), ref_id in zip(items, ids, strict=True):
            doc = docs.get(ref_id)
            if doc is None or media_id not in doc.get("refs", ()):
                refs.append(await self._reference_one(tenant_id, sha256, media_id))
            else:
                refs.append(BlobRef(ref_id, doc["key"], bool(doc["ready"]), bool(doc.get("thumbnail", False))))
        return refs

    async def _reference_one(self, tenant_id: str, sha256: str, media_id: str) -> BlobRef:
        ref_id = blob_ref_id(tenant_id, sha256)
        for _ in range(3):
            try:
                await self._blobs.update_one(*self._reference_update(tenant_id, sha256, media_id), upsert=True)
            except DuplicateKeyError:  # lost the race to create it: join the winner's document
                continue
            doc = await self._blobs.find_one({"_id": ref_id, "refs": media_id})
            if doc is not None:
                return BlobRef(ref_id, doc["key"], bool(doc["ready"]), bool(doc.get("thumbnail", False)))
        raise RuntimeError(f"could not reference blob {ref_id}")

    async def mark_blob_ready(self, ref: BlobRef, has_thumbnail: bool) -> None:
        await self._blobs.update_one({"_id": ref.id, "key": ref.key},
                                     {"$set": {"ready": True, "thumbnail": has_thumbnail}})

    async def release_blob(self, tenant_id: str, sha256: str, key: str, media_id: str) -> None:
        """Drop `media_id` from the blob's users and delete the blob document once nobody uses it."""
        ref_id = blob_ref_id(tenant_id, sha256)
        await self._blobs.update_one({"_id": ref_id, "key": key}, {"$pull": {"refs": media_id}})
        await self._blobs.delete_one({"_id": ref_id, "key": key, "refs": {"$size": 0}})

    async def blob_used_by(self, tenant_id: str, media_id: str) -> tuple[str, str] | None:
        """(sha256, key) of the blob `media_id` holds a reference on, if any."""
        doc = await self._blobs.find_one({"tenant_id": tenant_id, "refs": media_id}, {"sha256": 1, "key": 1})
        return (doc["sha256"], doc["key"]) if doc else None

    async def note_blob(self, media_id: str, sha256: str, key: str) -> None:
        await self._media.update_one({"_id": media_id}, {"$set": {"sha256": sha256, "blob_key": key}})

    async def blob_key_in_use(self, key: str) -> bool:
        return await self._blobs.count_documents({"key": key}, limit=1) > 0
