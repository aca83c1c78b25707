"""The simulated world the demo runs in: the vendor simulator on a fast clock, tuned so that
every job finishes within about half a minute of real time, and the settings that point
enrichwatch at it.

Both sides keep the simulator's time (enrichwatch's store is given its clock), so the polling
policy, the vendors' rate limits and the callback deadlines all see the same, sped-up world:
half an hour of vendor work in half a minute. The clock starts in the past by the demo's
expected length, so the times the log records end close to the real present.
"""

from __future__ import annotations

import time

from pydantic import AnyHttpUrl, SecretStr

from enrichwatch.config import NotifySettings, Settings, SmtpSettings
from enrichwatch.models import VendorName
from enrichwatch.sim import JobProfile, SimConfig, SimServer

SPEED = 60.0
"""Simulated seconds per real second."""
EXPECTED_REAL_SECONDS = 30.0
LOST_CALLBACK_VENDOR = VendorName.BRIGHTLOCAL
"""Its callback is dropped on purpose, so the late-callback fallback is seen at work."""
MAX_POLL_INTERVAL = 1500.0
"""Simulated seconds: the safety net, which also bounds how long a lost callback goes
unnoticed on a fresh install (with no history, the callback deadline is an hour away)."""
WORK_INTERVAL = 0.25
"""Real seconds between the reconciler's looks for due work (a simulated quarter minute)."""

# Simulated seconds each vendor's sample job runs: 12 to 20 real seconds at SPEED.
_DURATIONS = {
    VendorName.CRUSTDATA: 900.0,
    VendorName.INFLUENCERS_CLUB: 1200.0,
    VendorName.REPROMPT: 750.0,
    VendorName.BRIGHTLOCAL: 1000.0,
    VendorName.ECORE: 1100.0,
}


def demo_sim_config(seed: int = 0, speed: float = SPEED) -> SimConfig:
    """Jobs that run steadily and finish (no failed or paused jobs; a few failed records),
    and one vendor's callbacks lost."""
    config = SimConfig(
        seed=seed, speed=speed, start_time=time.time() - speed * EXPECTED_REAL_SECONDS
    )
    for vendor, seconds in _DURATIONS.items():
        config.vendor(vendor.value).profile = JobProfile(
            base_seconds=seconds,
            seconds_per_record=0.0,
            sigma=0.1,
            start_delay=20.0,
            start_jitter=5.0,
            record_failure_rate=0.05,
            job_failure_rate=0.0,
            credit_pause_rate=0.0,
            noise=0.3,
        )
    config.brightlocal.callbacks.loss_probability = 1.0
    return config


def aim_at_simulator(settings: Settings, sim: SimServer) -> Settings:
    """`settings` with every vendor's base URL and key pointed at `sim`, and the polling
    bounds the demo's fast clock needs. Notifications go to the console alone: the demo's
    made-up jobs must not reach the team's real Slack, inbox or webhook. Logging is kept."""
    updates: dict[str, object] = {
        "host": "127.0.0.1",
        "public_url": None,
        "work_interval": WORK_INTERVAL,
        "notify": NotifySettings(),
        "smtp": SmtpSettings(),
    }
    for vendor in VendorName:
        current = settings.vendor(vendor)
        changes: dict[str, object] = {
            "base_url": AnyHttpUrl(sim.base_urls[vendor.value]),
            "api_key": SecretStr(sim.api_keys[vendor.value]),
            "min_poll_interval": None,
            "max_poll_interval": MAX_POLL_INTERVAL,
        }
        if vendor is VendorName.CRUSTDATA:
            changes |= {"download_hosts": [sim.storage.host], "webhook_secret": None}
        if vendor is VendorName.ECORE:
            changes["auth_scheme"] = sim.config.ecore.auth_scheme
        updates[vendor.value] = current.model_copy(update=changes)
    return settings.model_copy(update=updates)
