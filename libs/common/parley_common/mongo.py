"""MongoDB through PyMongo's async API (the maintained successor of motor)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient


def mongo_client(uri: str, app_name: str) -> AsyncMongoClient[dict[str, Any]]:
    """Timezone-aware datetimes and standard UUIDs, so what we read equals what we wrote."""
    return AsyncMongoClient(uri, tz_aware=True, uuidRepresentation="standard", appname=app_name,
                            serverSelectionTimeoutMS=5000)
