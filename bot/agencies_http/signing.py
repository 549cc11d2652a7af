"""HMAC-SHA256 request signing, the same both ways.

The signature is ``sha256=<hex>`` of HMAC-SHA256, keyed with the agency's secret, over the
ASCII Unix timestamp, a dot and the exact body bytes. A request is accepted only within
``WINDOW`` of the receiver's clock, so a captured request cannot be replayed later; within
the window the idempotency key refuses a second copy.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from enum import StrEnum

WINDOW = timedelta(minutes=5)
SIGNATURE_HEADER = "X-Siaga112-Signature"
TIMESTAMP_HEADER = "X-Siaga112-Timestamp"
AGENCY_HEADER = "X-Siaga112-Agency"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PREFIX = "sha256="


class Refusal(StrEnum):
    """Why a signed request is refused."""

    NO_TIMESTAMP = "no_timestamp"
    STALE = "stale"
    """Outside the window (too old, or too far in the future)."""
    BAD_SIGNATURE = "bad_signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return PREFIX + digest.hexdigest()


def signed_headers(secret: str, now: datetime, body: bytes, key: str) -> dict[str, str]:
    """The headers of a signed request: signature, timestamp, idempotency key."""
    timestamp = int(now.timestamp())
    return {
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        IDEMPOTENCY_HEADER: key,
    }


def check(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    *,
    window: timedelta = WINDOW,
) -> Refusal | None:
    """None when the request is signed with ``secret`` within ``window`` of ``now``."""
    if not timestamp or not timestamp.strip().isdigit():
        return Refusal.NO_TIMESTAMP
    sent = int(timestamp)
    if abs(now.timestamp() - sent) > window.total_seconds():
        return Refusal.STALE
    expected = sign(secret, sent, body)
    if not signature or not hmac.compare_digest(expected, signature.strip()):
        return Refusal.BAD_SIGNATURE
    return None
