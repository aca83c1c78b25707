"""Real servers on loopback sockets that stand for the far ends of notifications: a Slack
incoming-webhook endpoint, an outbound-webhook receiver that verifies signatures with the
Standard Webhooks reference library, and an aiosmtpd mail server with STARTTLS and a login.

Each can be told how to answer its next requests (an HTTP status, or hang until released), and
records what it accepted, so a test can count delivered messages per (job, outcome, channel)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from standardwebhooks import Webhook, WebhookVerificationError

HANG = "hang"
"""A scripted answer: keep the request open until the test releases it (or the client goes)."""


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedEndpoint:
    """An aiohttp server whose next answers come from `script` (then 200 "ok"); every request
    is kept in `requests`, with the answer it got in `answered` (None: it hung)."""

    def __init__(self, path: str = "/hook") -> None:
        self.path = path
        self.script: list[Answer | str] = []
        self.requests: list[dict[str, Any]] = []
        self.released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, port: int = 0) -> ScriptedEndpoint:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}{self.path}"
        return self

    async def stop(self) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        entry: dict[str, Any] = {
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
            "answered": None,
        }
        self.requests.append(entry)
        answer = self.script.pop(0) if self.script else Answer()
        if answer == HANG:
            await self.released.wait()
            answer = Answer()
        assert isinstance(answer, Answer)
        answer = self.judge(entry, answer)
        entry["answered"] = answer.status
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    def judge(self, entry: dict[str, Any], answer: Answer) -> Answer:
        return answer

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Requests answered 2xx: the messages actually delivered."""
        return [r for r in self.requests if r["answered"] is not None and r["answered"] < 300]


class SlackEndpoint(ScriptedEndpoint):
    """Records Slack incoming-webhook posts (JSON with `text` and `blocks`)."""

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.accepted]


class WebhookReceiver(ScriptedEndpoint):
    """A consumer doing what the spec asks: verify with the reference library (401 if that
    fails), and process each `webhook-id` once (a repeat is answered 200 and ignored)."""

    def __init__(self, secret: str) -> None:
        super().__init__("/events")
        self.verifier = Webhook(secret)
        self.processed: dict[str, dict[str, Any]] = {}
        self.rejected: list[str] = []

    def judge(self, entry: dict[str, Any], answer: Answer) -> Answer:
        try:
            payload = self.verifier.verify(entry["body"], entry["headers"])
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
            return Answer(401, "bad signature")
        if answer.status < 300:
            self.processed.setdefault(entry["headers"]["webhook-id"], payload)
        return answer


# -- SMTP ----------------------------------------------------------------------------------


@dataclass
class MailTls:
    """A throwaway CA and a certificate for 127.0.0.1 it signed."""

    server_context: ssl.SSLContext
    ca_file: Path

    @classmethod
    def create(cls, directory: Path) -> MailTls:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        ca_file = directory / "mail-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        return cls(context, ca_file)


class MailHandler:
    """Keeps every accepted message; refuses RCPT for `refuse` addresses with 550; while
    `hang` is set, holds DATA open (without answering) until `release` is set; answers MAIL,
    RCPT and DATA each `tarpit` seconds late (as servers that slow down senders do)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self.hang = threading.Event()
        self.in_data = threading.Event()
        self.release = threading.Event()
        self.logins: list[str] = []
        self.tarpit = 0.0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        await asyncio.sleep(self.tarpit)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await asyncio.sleep(self.tarpit)
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.tarpit)
        if self.hang.is_set():
            self.hang.clear()
            self.in_data.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait)
            return "451 4.3.0 gave up"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted"


class MailServer:
    """aiosmtpd on `port` (in its own thread). `starttls`: STARTTLS and a login required;
    `tls`: TLS from the first byte (SMTPS), no login; `none`: plain text, no login."""

    def __init__(
        self, tls: MailTls, port: int, *, user: str, password: str, mode: str = "starttls"
    ) -> None:
        self.handler = MailHandler()
        self.port = port
        self._user, self._password = user, password

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            ) == (self._user, self._password)
            if ok:
                self.handler.logins.append(auth_data.login.decode())
            return AuthResult(success=ok, handled=False)

        secure: dict[str, object] = {
            "starttls": {
                "tls_context": tls.server_context,
                "require_starttls": True,
                "auth_required": True,
                "auth_require_tls": True,
                "authenticator": authenticate,
            },
            "tls": {"ssl_context": tls.server_context},
            "none": {},
        }[mode]
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port, **secure)

    def start(self) -> MailServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.handler.release.set()
        self.controller.stop()
