"""The object store behind Crustdata's `download_url`s, on its own host:port like S3.

It answers the way S3 does for pre-signed URLs: 403 with an XML error once `X-Amz-Date +
X-Amz-Expires` has passed on the sim clock or the signature does not match, 400 when an
`Authorization` header is sent alongside a query signature, and 404 `NoSuchKey` for a file
that was never written. Bodies are gzipped on the fly from a record generator the first
time; a finished job's file never changes, so the compressed bytes are kept (up to
`cache_limit` bytes in all, oldest dropped first) and served as they are afterwards, so a
reader measured against the store meets the cost of sending a file, not of making it. The
response carries `Content-Type: application/gzip` and no `Content-Encoding`, as the real bucket
does.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from aiohttp import web

from enrichwatch.sim.clock import SimClock
from enrichwatch.sim.faults import FaultInjector
from enrichwatch.sim.stats import SimStats

Resolver = Callable[[str, str], Iterator[bytes] | None]
"""(bucket, key) → raw JSONL chunks, or None when no such object was written."""

BUCKET = "crustdata-batch-api-data"
CACHE_LIMIT = 256 * 1024 * 1024
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class StorageRequest:
    path: str
    had_authorization: bool
    status: int
    at: float


class StorageServer:
    def __init__(
        self, clock: SimClock, stats: SimStats, faults: FaultInjector, secret: str
    ) -> None:
        self._clock = clock
        self._stats = stats
        self._faults = faults
        self._secret = secret.encode()
        self.resolvers: dict[str, Resolver] = {}
        self.requests: list[StorageRequest] = []
        self.base_url = ""
        self.cache_limit = CACHE_LIMIT
        self._cache: OrderedDict[tuple[str, str], list[bytes]] = OrderedDict()
        self._cached_bytes = 0
        self.reject_authorization = True
        """Answer 400 like S3 when both a header and a query signature are present."""
        self.app = web.Application()
        self.app.router.add_get("/{bucket}/{key:.+}", self._get)

    @property
    def host(self) -> str:
        """host:port of the store, for a client's download allow-list."""
        return self.base_url.split("://", 1)[-1]

    def presign(self, bucket: str, key: str, ttl: float, now: float | None = None) -> str:
        stamp = datetime.fromtimestamp(self._clock.now() if now is None else now, UTC)
        date = stamp.strftime(_DATE_FORMAT)
        expires = str(max(1, int(ttl)))
        path = f"/{bucket}/{quote(key)}"
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"SIMAKIAEXAMPLE/{date[:8]}/us-east-1/s3/aws4_request",
            "X-Amz-Date": date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": self._sign(path, date, expires),
        }
        return f"{self.base_url}{path}?{urlencode(query)}"

    def _sign(self, path: str, date: str, expires: str) -> str:
        message = f"{path}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self._stats.requests[("storage", "GET /{bucket}/{key}")] += 1
        response = await self._answer(request)
        self.requests.append(
            StorageRequest(
                request.path,
                "Authorization" in request.headers,
                response.status,
                self._clock.now(),
            )
        )
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if self._faults.take("storage", "GET /{bucket}/{key}", "server_errors"):
            self._stats.injected[("storage", "server_errors")] += 1
            return _xml_error(503, "SlowDown", "Please reduce your request rate.")
        query = request.query
        date, expires = query.get("X-Amz-Date", ""), query.get("X-Amz-Expires", "")
        signature = query.get("X-Amz-Signature", "")
        if "Authorization" in request.headers and signature and self.reject_authorization:
            return _xml_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be "
                "specified",
            )
        if not (date and expires and signature):
            return _xml_error(403, "AccessDenied", "Access Denied")
        expected = self._sign(request.raw_path.split("?", 1)[0], date, expires)
        if not hmac.compare_digest(expected, signature):
            return _xml_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        try:
            signed_at = datetime.strptime(date, _DATE_FORMAT).replace(tzinfo=UTC).timestamp()
            deadline = signed_at + int(expires)
        except ValueError:
            return _xml_error(403, "AuthorizationQueryParametersError", "Invalid X-Amz-Date")
        if self._faults.plan("crustdata").expire_links or self._clock.now() > deadline:
            expiry = datetime.fromtimestamp(deadline, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            server = self._clock.datetime().strftime("%Y-%m-%dT%H:%M:%SZ")
            return _xml_error(
                403,
                "AccessDenied",
                "Request has expired",
                f"<X-Amz-Expires>{expires}</X-Amz-Expires><Expires>{expiry}</Expires>"
                f"<ServerTime>{server}</ServerTime>",
            )
        bucket, key = request.match_info["bucket"], request.match_info["key"]
        resolver = self.resolvers.get(bucket)
        chunks = resolver(bucket, key) if resolver is not None else None
        if chunks is None:
            return _xml_error(
                404, "NoSuchKey", "The specified key does not exist.", f"<Key>{key}</Key>"
            )
        truncate = self._faults.take("crustdata", "GET /{bucket}/{key}", "truncate_gzip")
        if truncate:
            self._stats.injected[("crustdata", "truncate_gzip")] += 1
        cached = None if truncate else self._cache.get((bucket, key))
        if cached is not None:
            self._cache.move_to_end((bucket, key))
            return await _send(request, cached)
        response, body = await _stream_gzip(request, chunks, truncate)
        if body is not None:
            self._keep((bucket, key), body)
        return response

    def _keep(self, name: tuple[str, str], body: list[bytes]) -> None:
        size = sum(map(len, body))
        if size > self.cache_limit:
            return
        self._cache[name] = body
        self._cached_bytes += size
        while self._cached_bytes > self.cache_limit:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= sum(map(len, dropped))


async def _stream_gzip(
    request: web.Request, chunks: Iterator[bytes], truncate: bool
) -> tuple[web.StreamResponse, list[bytes] | None]:
    """The file compressed as it is sent; with it, the whole compressed body (None when the
    fault cut it short)."""
    response = _gzip_response()
    await response.prepare(request)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    body: list[bytes] = []
    for chunk in chunks:
        data = compressor.compress(chunk)
        if truncate:
            await response.write(data + compressor.flush(zlib.Z_SYNC_FLUSH))
            await response.write_eof()
            return response, None
        if data:
            body.append(data)
            await response.write(data)
    body.append(compressor.flush())
    await response.write(body[-1])
    await response.write_eof()
    return response, body


async def _send(request: web.Request, body: list[bytes]) -> web.StreamResponse:
    response = _gzip_response()
    await response.prepare(request)
    for data in body:
        await response.write(data)
    await response.write_eof()
    return response


def _gzip_response() -> web.StreamResponse:
    return web.StreamResponse(headers={"Content-Type": "application/gzip", "Server": "AmazonS3"})


def _xml_error(status: int, code: str, message: str, extra: str = "") -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
        "<RequestId>SIMREQUEST0000001</RequestId><HostId>enrichwatch-sim</HostId></Error>"
    )
    return web.Response(
        status=status, text=body, content_type="application/xml", headers={"Server": "AmazonS3"}
    )
