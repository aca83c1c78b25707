"""What we check on an inbound vendor callback before storing it: its signature, where the
vendor signs, and the key that recognises a redelivery.

Vendors' callbacks are unsigned or loosely specified (vendors/FACTS.md §3.6, §4.5), so the
per-job token in the URL is the real gate; a signature is checked only when a secret is set.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from enrichwatch.config import Settings
from enrichwatch.errors import SignatureError
from enrichwatch.models import VendorName

CRUSTDATA_SIGNATURE_HEADER = "x-crustdata-signature"
CRUSTDATA_EVENT_ID_HEADER = "x-crustdata-event-id"
SIGNATURE_TOLERANCE_S = 300
# ASCII digits only (str.isdigit also takes "²" and other scripts' digits, which int() refuses
# or reads), and few enough that int() never meets its length limit.
_TIMESTAMP = re.compile(r"[0-9]{1,18}")

# Headers naming a vendor's own delivery id, which survives redelivery.
_EVENT_ID_HEADERS: dict[VendorName, str] = {VendorName.CRUSTDATA: CRUSTDATA_EVENT_ID_HEADER}


@dataclass(frozen=True)
class CallbackCheck:
    verification: str  # "verified" or "unsigned"
    dedupe_key: str


def inspect_callback(
    vendor: VendorName,
    settings: Settings,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> CallbackCheck:
    """Verify and key a callback; raises SignatureError when a configured check fails."""
    verification = "unsigned"
    if vendor is VendorName.CRUSTDATA and settings.crustdata.webhook_secret is not None:
        verify_crustdata_signature(
            headers.get(CRUSTDATA_SIGNATURE_HEADER),
            body,
            settings.crustdata.webhook_secret.get_secret_value(),
            now,
        )
        verification = "verified"
    header = _EVENT_ID_HEADERS.get(vendor)
    event_id = headers.get(header) if header else None
    dedupe_key = f"event:{event_id}" if event_id else f"sha256:{hashlib.sha256(body).hexdigest()}"
    return CallbackCheck(verification, dedupe_key)


def sign_crustdata(body: bytes, secret: str, timestamp: int) -> str:
    """The `x-crustdata-signature` value for `body` (used by the simulator and tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_crustdata_signature(header: str | None, body: bytes, secret: str, now: float) -> None:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, within ±300 s; several v1 values allowed,
    so a vendor can rotate keys."""
    if not header:
        raise SignatureError(VendorName.CRUSTDATA, "missing_signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and _TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(VendorName.CRUSTDATA, "malformed_signature")
    if abs(now - timestamp) > SIGNATURE_TOLERANCE_S:
        raise SignatureError(VendorName.CRUSTDATA, "stale_timestamp")
    expected = sign_crustdata(body, secret, timestamp).split("v1=", 1)[1].encode()
    # Compared as bytes: compare_digest refuses non-ASCII strings, and a header may hold any.
    if not any(
        hmac.compare_digest(expected, candidate.encode("utf-8", "surrogatepass"))
        for candidate in candidates
    ):
        raise SignatureError(VendorName.CRUSTDATA, "bad_signature")
