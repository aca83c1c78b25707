"""`SimServer`: all five vendor APIs on one loopback site, Crustdata's storage on another.

Each vendor lives under its own path prefix (`/crustdata`, `/ecore`, …), so a client
configured with base URL `{sim}/crustdata` appends the vendor's documented paths unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from enrichwatch.sim.base import JobView, SimContext, VendorSim, json_response
from enrichwatch.sim.brightlocal import BrightLocalSim
from enrichwatch.sim.callbacks import CallbackDispatcher
from enrichwatch.sim.clock import SimClock
from enrichwatch.sim.config import VENDORS, CallbackConfig, SimConfig
from enrichwatch.sim.crustdata import CrustdataSim
from enrichwatch.sim.ecore import ECoreSim
from enrichwatch.sim.faults import FaultInjector, FaultPlan
from enrichwatch.sim.influencers_club import InfluencersClubSim
from enrichwatch.sim.reprompt import RepromptSim
from enrichwatch.sim.stats import SimStats
from enrichwatch.sim.storage import StorageServer

_VENDOR_CLASSES: tuple[type[VendorSim], ...] = (
    CrustdataSim,
    InfluencersClubSim,
    RepromptSim,
    BrightLocalSim,
    ECoreSim,
)
_VENDOR_KEY = web.RequestKey("sim_vendor", str)
_V = TypeVar("_V", bound=VendorSim)


class SimServer:
    """Async context manager running the simulator; see the package docstring for usage."""

    def __init__(
        self, config: SimConfig | None = None, *, port: int = 0, storage_port: int = 0
    ) -> None:
        self.config = config or SimConfig()
        self.clock = SimClock(self.config.start_time, self.config.speed)
        self.stats = SimStats()
        self.faults = FaultInjector()
        self.callbacks = CallbackDispatcher(self.clock, self.config.seed, self._callback_config)
        self.storage = StorageServer(
            self.clock, self.stats, self.faults, f"sim-storage-{self.config.seed}"
        )
        self._ctx = SimContext(
            self.clock, self.config, self.stats, self.faults, self.callbacks, self.storage
        )
        self.vendors: dict[str, VendorSim] = {cls.name: cls(self._ctx) for cls in _VENDOR_CLASSES}
        self._port, self._storage_port = port, storage_port
        self._runners: list[web.AppRunner] = []
        self._pump: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.url = ""
        self.app = self._build_app()

    # -- typed shortcuts ---------------------------------------------------------------

    @property
    def crustdata(self) -> CrustdataSim:
        return self._vendor(CrustdataSim)

    @property
    def influencers_club(self) -> InfluencersClubSim:
        return self._vendor(InfluencersClubSim)

    @property
    def reprompt(self) -> RepromptSim:
        return self._vendor(RepromptSim)

    @property
    def brightlocal(self) -> BrightLocalSim:
        return self._vendor(BrightLocalSim)

    @property
    def ecore(self) -> ECoreSim:
        return self._vendor(ECoreSim)

    def _vendor(self, cls: type[_V]) -> _V:
        vendor = self.vendors[cls.name]
        assert isinstance(vendor, cls)
        return vendor

    @property
    def base_urls(self) -> dict[str, str]:
        return {name: f"{self.url}/{name}" for name in VENDORS}

    @property
    def api_keys(self) -> dict[str, str]:
        return {name: self.config.vendor(name).api_key for name in VENDORS}

    def vendor_settings(self) -> dict[str, dict[str, Any]]:
        """Every vendor's settings section that aims enrichwatch at this simulator, keyed by
        vendor, as `load_settings` takes them (and as `env_lines` prints them)."""
        sections: dict[str, dict[str, Any]] = {
            name: {"base_url": self.base_urls[name], "api_key": self.api_keys[name]}
            for name in VENDORS
        }
        sections["crustdata"]["download_hosts"] = [self.storage.host]
        sections["ecore"]["auth_scheme"] = self.config.ecore.auth_scheme
        if self.config.reprompt.org is not None:
            sections["reprompt"]["org"] = self.config.reprompt.org
        return sections

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving; if a port cannot be bound, whatever had started is stopped again."""
        self._stopping.clear()
        await self.callbacks.start()
        try:
            storage_runner = await self._serve(
                self.storage.app, self.config.storage_host, self._storage_port
            )
            self.storage.base_url = _url(storage_runner, self.config.storage_host)
            api_runner = await self._serve(self.app, self.config.host, self._port)
        except BaseException:
            await self.stop()
            raise
        self.url = _url(api_runner, self.config.host)
        if not self.clock.manual:
            self._pump = asyncio.create_task(self.callbacks.run_forever())

    async def _serve(self, app: web.Application, host: str, port: int) -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port).start()
        return runner

    async def stop(self) -> None:
        self._stopping.set()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.callbacks.close()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- test helpers ------------------------------------------------------------------

    async def advance(self, seconds: float) -> int:
        """Move the clock forward, delivering every callback that falls due on the way.

        On a manual clock the callbacks go out in due order with the clock set to each due
        time; on a scaled clock the jump happens first and everything now due follows.
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        if not self.clock.manual:
            self.clock.advance(seconds)
            return await self.callbacks.run_until(self.clock.now())
        target = self.clock.now() + seconds
        handled = await self.callbacks.run_until(target)
        self.clock.advance_to(target)
        return handled

    async def advance_to(self, when: float) -> int:
        """Like `advance`, to an absolute simulated time; a time already past is a no-op."""
        return await self.advance(max(0.0, when - self.clock.now()))

    async def deliver_due(self) -> int:
        """Deliver callbacks already due without moving the clock."""
        return await self.callbacks.run_until(self.clock.now())

    def jobs(self, vendor: str) -> list[JobView]:
        """Every job `vendor` holds, oldest first, with its counts as of now."""
        return self.vendors[vendor].views()

    def set_fault(self, vendor: str, **settings: Any) -> FaultPlan:
        """Replace a vendor's fault plan, e.g. `set_fault("crustdata", rate_limit=2)`."""
        return self.faults.set(vendor, **settings)

    def clear_faults(self, vendor: str | None = None) -> None:
        self.faults.clear(vendor)

    def set_callbacks(self, vendor: str, **settings: Any) -> CallbackConfig:
        """Change delay, loss, duplication or jitter of a vendor's callbacks."""
        config = self._callback_config(vendor)
        for key, value in settings.items():
            if not hasattr(config, key):
                raise TypeError(f"unknown callback setting {key!r}")
            setattr(config, key, value)
        return config

    def _callback_config(self, vendor: str) -> CallbackConfig:
        config = getattr(self.config.vendor(vendor), "callbacks", None)
        if not isinstance(config, CallbackConfig):
            raise KeyError(f"{vendor} sends no callbacks")
        return config

    # -- the app -----------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        for name, vendor in self.vendors.items():
            vendor.add_routes(app.router, f"/{name}")
        app.router.add_get("/_sim/stats", self._stats_endpoint)
        app.router.add_get("/_sim/clock", self._clock_endpoint)
        app.router.add_post("/_sim/advance", self._advance_endpoint)
        app.router.add_post("/_sim/faults/{vendor}", self._fault_endpoint)
        app.on_response_prepare.append(self._add_vendor_headers)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.path.split("/", 2)[1]
        vendor = self.vendors.get(name)
        if vendor is None:
            return await handler(request)
        request[_VENDOR_KEY] = name
        endpoint = _endpoint_label(request, name)
        self.stats.requests[(name, endpoint)] += 1
        plan = self.faults.plan(name)
        if not self.faults.take(name, endpoint, "slow_count"):
            return await self._answer(request, handler, vendor, endpoint, plan)
        self.stats.injected[(name, "slow")] += 1
        if plan.slow_after_answer:
            response = await self._answer(request, handler, vendor, endpoint, plan)
            await self._hold(plan.slow_seconds)
            return response
        await self._hold(plan.slow_seconds)
        return await self._answer(request, handler, vendor, endpoint, plan)

    async def _hold(self, seconds: float) -> None:
        """Hold a request, but not past `stop`: a client that gave up on it (a test's stand-in
        for a killed process) would otherwise keep the shutdown waiting on it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _answer(
        self,
        request: web.Request,
        handler: Handler,
        vendor: VendorSim,
        endpoint: str,
        plan: FaultPlan,
    ) -> web.StreamResponse:
        name = vendor.name
        if self.faults.take(name, endpoint, "server_errors"):
            self.stats.injected[(name, "server_errors")] += 1
            return vendor.server_error(plan.server_error_status)
        if self.faults.take(name, endpoint, "rate_limit"):
            self.stats.injected[(name, "rate_limit")] += 1
            return vendor.throttled(plan.retry_after, None)
        if request.match_info.http_exception is not None:
            if request.match_info.http_exception.status == 405:
                return vendor.method_not_allowed()
            return vendor.not_found()
        denied = await vendor.authenticate(request)
        if denied is not None:
            return denied
        limited = vendor.check_limit(request, endpoint)
        if limited is not None:
            return limited
        return await handler(request)

    async def _add_vendor_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        name = request.get(_VENDOR_KEY)
        if name is None:
            return
        for key, value in self.vendors[name].response_headers(request).items():
            response.headers.setdefault(key, value)

    async def _stats_endpoint(self, request: web.Request) -> web.Response:
        body = self.stats.as_json()
        body["now"] = self.clock.now()
        body["jobs"] = {
            name: [view.__dict__ for view in vendor.views()]
            for name, vendor in self.vendors.items()
        }
        body["storage_requests"] = [r.__dict__ for r in self.storage.requests]
        body["callbacks"] = [
            {k: v for k, v in d.__dict__.items() if k != "body"} | {"body": d.body.decode()}
            for d in self.callbacks.deliveries
        ]
        return json_response(body)

    async def _clock_endpoint(self, request: web.Request) -> web.Response:
        return json_response({"now": self.clock.now(), "speed": self.clock.speed})

    async def _advance_endpoint(self, request: web.Request) -> web.Response:
        try:
            seconds = float(request.query.get("seconds", "0"))
        except ValueError:
            return json_response({"error": "seconds must be a number"}, 400)
        handled = await self.advance(max(0.0, seconds))
        return json_response({"now": self.clock.now(), "callbacks_handled": handled})

    async def _fault_endpoint(self, request: web.Request) -> web.Response:
        try:
            settings = json.loads(await request.read() or b"{}")
            plan = self.set_fault(request.match_info["vendor"], **settings)
        except (ValueError, TypeError, KeyError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(plan.__dict__)


def _endpoint_label(request: web.Request, vendor: str) -> str:
    """`METHOD /documented/path/{param}`, the route pattern without the vendor prefix."""
    resource = request.match_info.route.resource
    if resource is None:
        return f"{request.method} <unmatched>"
    return f"{request.method} {resource.canonical.removeprefix('/' + vendor)}"


def _url(runner: web.AppRunner, host: str) -> str:
    for address in runner.addresses:
        return f"http://{host}:{address[1]}"
    raise RuntimeError("site has no listening socket")
