"""The demo's settings: everything it needs from the operator's environment, and nothing
that would reach outside it."""

from __future__ import annotations

from enrichwatch.config import load_settings
from enrichwatch.demo.world import aim_at_simulator, demo_sim_config
from enrichwatch.runtime import notify_routes
from enrichwatch.sim import SimServer

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_the_demo_notifies_the_console_alone_whatever_is_configured(tmp_path):
    """Its made-up jobs must not reach the team's real Slack channel, inbox or webhook."""
    settings = load_settings(
        db=tmp_path / "demo.db",
        notify={
            "slack_webhook_url": "https://hooks.slack.com/services/T0/B0/X",
            "email_to": ["team@example.com"],
            "webhook_url": "https://example.com/hooks",
            "webhook_secret": SECRET,
        },
        smtp={"host": "smtp.example.com", "from": "enrichwatch@example.com"},
    )
    assert notify_routes(settings).channels == {"slack", "email", "webhook"}

    async with SimServer(demo_sim_config()) as sim:
        aimed = aim_at_simulator(settings, sim)

    assert notify_routes(aimed).channels == {"console"}
    assert aimed.smtp.host is None
    assert aimed.db == settings.db
