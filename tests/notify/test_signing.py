"""Our Standard Webhooks signer against the spec's test vectors, and against the reference
library's verifier."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from enrichwatch.config import decode_webhook_secret, load_settings
from enrichwatch.errors import SettingsError
from enrichwatch.notify.webhook import sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = b'{"test": 2432232314}'
VECTOR = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_spec_vector():
    assert sign(SECRET, MSG_ID, TIMESTAMP, PAYLOAD) == VECTOR


def test_the_secret_works_without_its_prefix():
    assert sign(SECRET.removeprefix("whsec_"), MSG_ID, TIMESTAMP, PAYLOAD) == VECTOR


@pytest.mark.parametrize(
    "wrong",
    [
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v1,",
    ],
)
def test_the_negative_vectors_are_not_what_we_sign(wrong):
    assert sign(SECRET, MSG_ID, TIMESTAMP, PAYLOAD) != wrong


def test_any_change_to_id_timestamp_or_body_changes_the_signature():
    assert sign(SECRET, MSG_ID + "x", TIMESTAMP, PAYLOAD) != VECTOR
    assert sign(SECRET, MSG_ID, TIMESTAMP + 1, PAYLOAD) != VECTOR
    assert sign(SECRET, MSG_ID, TIMESTAMP, PAYLOAD + b" ") != VECTOR


@pytest.mark.parametrize(
    "secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr"]
)
@pytest.mark.parametrize("prefix", ["", "whsec_"])
def test_unpadded_secrets_sign_as_the_reference_library_verifies(secret, prefix):
    now = int(time.time())
    signature = sign(prefix + secret, MSG_ID, now, PAYLOAD)
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(now), "webhook-signature": signature}
    assert Webhook(prefix + secret).verify(PAYLOAD, headers) == {"test": 2432232314}


def test_the_reference_library_accepts_our_signature_among_others_and_refuses_a_stale_one():
    now = int(time.time())
    ours = sign(SECRET, MSG_ID, now, PAYLOAD)
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(now),
        "webhook-signature": f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,x {ours}",
    }
    assert Webhook(SECRET).verify(PAYLOAD, headers) == {"test": 2432232314}
    stale = now - 5 * 60 - 1
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(stale),
        "webhook-signature": sign(SECRET, MSG_ID, stale, PAYLOAD),
    }
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(PAYLOAD, headers)


def test_while_a_key_is_rotated_receivers_with_either_key_accept_the_webhook():
    """Both keys in the setting, new first: one signature per key, so a receiver still on
    the old key and one already on the new key both verify it; a third key does not."""
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    settings = load_settings(
        notify={"webhook_url": "https://example.org/hook", "webhook_secret": f"{new} {SECRET}"}
    )
    secret = settings.notify.webhook_secret
    assert secret is not None
    now = int(time.time())
    signature = sign(secret.get_secret_value(), MSG_ID, now, PAYLOAD)
    assert len(signature.split()) == 2
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(now), "webhook-signature": signature}
    for key in (new, SECRET):
        assert Webhook(key).verify(PAYLOAD, headers) == {"test": 2432232314}
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"o" * 32).decode()).verify(PAYLOAD, headers)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!"])
def test_an_empty_or_malformed_secret_is_refused(secret):
    with pytest.raises(ValueError, match="webhook secret"):
        decode_webhook_secret(secret)


def test_settings_refuse_a_bad_secret_without_echoing_it(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings(db=tmp_path / "x.db", notify={"webhook_secret": "whsec_not base64!"})
    assert "not base64!" not in str(caught.value)
    assert "ENRICHWATCH_NOTIFY__WEBHOOK_SECRET" in str(caught.value)


def test_settings_refuse_a_webhook_url_without_a_secret(tmp_path):
    with pytest.raises(SettingsError, match="webhook_secret"):
        load_settings(db=tmp_path / "x.db", notify={"webhook_url": "http://127.0.0.1:1/x"})


def test_settings_refuse_email_without_an_smtp_host(tmp_path):
    with pytest.raises(SettingsError, match=r"smtp\.host"):
        load_settings(db=tmp_path / "x.db", notify={"email_to": ["ops@example.org"]})


def test_notification_secrets_are_scrubbed_from_logs(tmp_path):
    settings = load_settings(
        db=tmp_path / "x.db",
        notify={"slack_webhook_url": "https://hooks.slack.com/services/T0/B0/sekret"},
        smtp={"host": "mail", "password": "mail-sekret"},
    )
    secrets = settings.secrets()
    assert "https://hooks.slack.com/services/T0/B0/sekret" in secrets
    assert "mail-sekret" in secrets
