"""Email over SMTP with aiosmtplib: plain-text and HTML parts, the results attached as CSV
when they fit under the configured size, else a link; a link too when the server finds the
mail with the CSV too big (552), so the news that results are ready still arrives. The
Message-ID is derived from the notification's fixed id, so a copy sent again after a crash
carries the same Message-ID and mail clients that dedupe on it show one message.

The subject carries the job's name, which anyone who can create a job chooses: it is made one
line (no CR/LF can start a header of its own) and folded so that it reads back exactly as it
was (`FoldedHeader`)."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.policy import Policy
from email.utils import formatdate
from html import escape

import aiosmtplib

from enrichwatch.config import SmtpSettings
from enrichwatch.notify.errors import NotifyPermanentError, NotifyTransientError
from enrichwatch.notify.message import Message

CHANNEL = "email"
TOO_LARGE = 552
LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


@dataclass(frozen=True)
class Attachment:
    """The results as CSV (`data`), or None when they exceed `limit` bytes or the mail server
    refused them (`too_large_for_server`)."""

    data: bytes | None
    limit: int
    too_large_for_server: bool = False


@dataclass(frozen=True)
class Sent:
    """What the server took: `refused` names the recipients it refused while taking the mail
    for the others (with its reason), `attached` whether the results went with it."""

    refused: dict[str, str]
    attached: bool


class _TooLarge(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def compose(
    smtp: SmtpSettings,
    recipients: list[str],
    message: Message,
    attachment: Attachment | None,
    *,
    message_id: str,
) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = subject(message.title)
    mail["From"] = smtp.from_
    mail["To"] = ", ".join(recipients)
    mail["Date"] = formatdate(message.occurred_at, usegmt=True)
    mail["Message-ID"] = f"<{message_id}@enrichwatch>"
    text, html = message.text(), message.html()
    if attachment is not None and attachment.data is None:
        why = (
            "too large for the mail server"
            if attachment.too_large_for_server
            else f"larger than {attachment.limit} bytes"
        )
        note = f"The results are {why}, so they are not attached; download them from"
        text += f"\n{note} {message.results_url}\n"
        link = escape(message.results_url)
        html = html.replace("</body>", f"<p>{note} <a href='{link}'>{link}</a>.</p></body>")
    mail.set_content(text)
    mail.add_alternative(html, subtype="html")
    if attachment is not None and attachment.data is not None:
        mail.add_attachment(
            attachment.data,
            maintype="text",
            subtype="csv",
            filename=f"job-{message.job_id}-results.csv",
        )
    return mail


def subject(title: str) -> FoldedHeader:
    """`title` on one line, folded so that it reads back exactly as it was."""
    return FoldedHeader("Subject", LINE_BREAKS.sub(" ", title).strip())


class FoldedHeader:
    """A header folded by `email.header.Header` rather than by the email package's default
    policy, whose folding loses the space between two encoded words at a fold and can start the
    value on a line of its own (read back with a leading space). ASCII stays as it is unless it
    looks like an encoded word; anything else is encoded with its spaces inside the encoded
    words. The email package takes an object with `name` and `fold` as a header that folds
    itself."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def __str__(self) -> str:
        return self.value

    def fold(self, *, policy: Policy) -> str:
        plain = self.value.isascii() and "=?" not in self.value
        header = Header(self.value, "us-ascii" if plain else "utf-8", header_name=self.name)
        return f"{self.name}: {header.encode(linesep=policy.linesep)}{policy.linesep}"


async def send_email(
    smtp: SmtpSettings,
    recipients: list[str],
    message: Message,
    attachment: Attachment | None,
    *,
    message_id: str,
    timeout_s: float,
) -> Sent:
    """Send the mail. Recipients the server refused while taking it for the others are
    reported, not retried: the mail is sent then, and sending it again would repeat it to
    everyone who has it. A mail the server refuses as too big, with the results attached, goes
    again at once with the link instead (the first was refused, so no one has it)."""
    if not smtp.host:
        raise NotifyPermanentError(CHANNEL, "no SMTP server configured (smtp.host)")
    attached = attachment is not None and attachment.data is not None
    mail = compose(smtp, recipients, message, attachment, message_id=message_id)
    try:
        try:
            refused = await _submit(smtp, mail, timeout_s)
        except _TooLarge:
            if attachment is None or not attached:
                raise
            linked = Attachment(None, attachment.limit, too_large_for_server=True)
            mail = compose(smtp, recipients, message, linked, message_id=message_id)
            attached = False
            refused = await _submit(smtp, mail, timeout_s)
    except _TooLarge as exc:
        raise NotifyPermanentError(CHANNEL, exc.reason) from None
    return Sent(refused, attached)


async def _submit(smtp: SmtpSettings, mail: EmailMessage, timeout_s: float) -> dict[str, str]:
    tls_context = None
    if smtp.ca_file is not None:
        tls_context = ssl.create_default_context(cafile=str(smtp.ca_file))
    try:
        refused, _ = await aiosmtplib.send(
            mail,
            hostname=smtp.host,
            port=smtp.effective_port,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            tls_context=tls_context,
            timeout=timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        reasons = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if all(r.code >= 500 for r in exc.recipients):
            raise NotifyPermanentError(CHANNEL, f"recipients refused: {reasons}") from None
        raise NotifyTransientError(CHANNEL, f"recipients deferred: {reasons}") from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        reason = f"login refused: {exc.code} {exc.message}"
        if exc.code >= 500:
            raise NotifyPermanentError(CHANNEL, reason) from None
        raise NotifyTransientError(CHANNEL, reason) from None  # 454: try again later
    except aiosmtplib.SMTPResponseException as exc:
        reason = f"server said {exc.code} {exc.message}"
        if exc.code == TOO_LARGE:
            raise _TooLarge(reason) from None
        if exc.code >= 500:
            raise NotifyPermanentError(CHANNEL, reason) from None
        raise NotifyTransientError(CHANNEL, reason) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise NotifyTransientError(CHANNEL, f"cannot send through {smtp.host}: {exc}") from None
    return {recipient: f"{reply.code} {reply.message}" for recipient, reply in refused.items()}
