"""Knobs for the simulator: how long jobs take, how often they fail, how each vendor limits.

All of these are plain mutable dataclasses read at request time, so a test may change
`server.config.crustdata.rpm` between two requests and the next one obeys it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

VENDORS: tuple[str, ...] = ("crustdata", "influencers_club", "reprompt", "brightlocal", "ecore")


@dataclass
class JobProfile:
    """How a simulated job behaves, drawn once per job from the server seed.

    A job's duration is log-normal around `base_seconds + seconds_per_record * total` with
    spread `sigma`; it waits `start_delay` (± `start_jitter`) before any record is processed.
    """

    base_seconds: float = 60.0
    seconds_per_record: float = 0.05
    sigma: float = 0.35
    start_delay: float = 5.0
    start_jitter: float = 2.0
    record_failure_rate: float = 0.05
    job_failure_rate: float = 0.0
    """Probability that a job fails as a whole part-way through."""
    credit_pause_rate: float = 0.0
    """Probability that a job pauses for credits (vendors that have such a state)."""
    credit_pause_at: float = 0.5
    """Fraction of records processed when a credit pause strikes."""
    noise: float = 0.5
    """0 gives linear progress; higher values make the rate uneven (still monotonic)."""


@dataclass
class CallbackConfig:
    """Delivery behaviour for a vendor's outbound callbacks, in simulated seconds."""

    delay: float = 2.0
    jitter: float = 0.0
    """Extra random delay in [0, jitter]; enough of it reorders callbacks of nearby jobs."""
    loss_probability: float = 0.0
    duplicate_probability: float = 0.0
    duplicate_delay: float = 1.0
    timeout: float = 10.0
    """Real seconds to wait for the receiver to answer."""


@dataclass
class VendorConfig:
    api_key: str = ""
    rpm: int | None = None
    """Sliding-window requests per minute per key; None means unlimited."""
    profile: JobProfile = field(default_factory=JobProfile)


@dataclass
class CrustdataConfig(VendorConfig):
    api_key: str = "sim-crustdata-key"
    rpm: int | None = 60
    max_active_jobs: int = 5
    part_size: int = 5000
    """Records per `download_urls` part."""
    link_ttl: float = 5 * 24 * 3600.0
    credits: int | None = None
    """Credit balance; a submit needing more identifiers than this answers 402."""
    callback_on_failure: bool = False
    sign_callbacks: bool = False
    """Sign callbacks like Crustdata's Watch webhooks (`x-crustdata-signature: t=…,v1=…`)."""
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    caps: dict[str, int] = field(
        default_factory=lambda: {"person": 10_000, "contact": 300, "company": 10_000}
    )


@dataclass
class InfluencersClubConfig(VendorConfig):
    api_key: str = "sim-influencers-club-key"
    rpm: int | None = 300
    max_file_bytes: int = 10 * 1024 * 1024


@dataclass
class RepromptConfig(VendorConfig):
    api_key: str = "sim-reprompt-key"
    org: str | None = None
    """When set, other org slugs answer 403; None accepts any org (each gets its own batches)."""
    max_jobs_per_request: int = 50_000
    batch_failure_threshold: float = 0.5
    """A finished batch whose failed share exceeds this is `failed`, else `completed`."""


@dataclass
class BrightLocalConfig(VendorConfig):
    api_key: str = "sim-brightlocal-key"
    batch_id_as_string: bool = True
    """The docs show `"batch-id": "17"`; the vendor's PHP client insists on an int."""
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)


@dataclass
class ECoreConfig(VendorConfig):
    api_key: str = "sim-ecore-token"
    other_account_keys: tuple[str, ...] = ()
    """Tokens of other users' accounts: each sees only its own jobs, as `api_key` does."""
    auth_scheme: Literal["Bearer", "Token"] = "Bearer"
    wallet: float | None = None
    """Credit balance; None is unlimited. Submit pre-charges `credits_per_record` per row."""
    credits_per_record: float = 1.0
    daily_quota: int | None = None
    """Test tokens' daily request quota; over it answers 429."""


@dataclass
class SimConfig:
    seed: int = 0
    speed: float | None = None
    """None: manual clock. A number: simulated seconds per real second."""
    start_time: float | None = None
    host: str = "127.0.0.1"
    storage_host: str = "127.0.0.1"
    crustdata: CrustdataConfig = field(default_factory=CrustdataConfig)
    influencers_club: InfluencersClubConfig = field(default_factory=InfluencersClubConfig)
    reprompt: RepromptConfig = field(default_factory=RepromptConfig)
    brightlocal: BrightLocalConfig = field(default_factory=BrightLocalConfig)
    ecore: ECoreConfig = field(default_factory=ECoreConfig)

    def vendor(self, name: str) -> VendorConfig:
        if name not in VENDORS:
            raise KeyError(f"unknown vendor {name!r}")
        config: VendorConfig = getattr(self, name)
        return config
