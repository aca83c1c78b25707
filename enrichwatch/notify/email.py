"""Email over SMTP with aiosmtplib: plain-text and HTML parts, the results attached as CSV
when they fit under the configured size, else a link. The Message-ID is derived from the
notification's fixed id, so a copy sent again after a crash carries the same Message-ID and
mail clients that dedupe on it show one message."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from enrichwatch.config import SmtpSettings
from enrichwatch.notify.errors import NotifyPermanentError, NotifyTransientError
from enrichwatch.notify.message import Message

CHANNEL = "email"


@dataclass(frozen=True)
class Attachment:
    """The results as CSV (`data`), or None when they exceed `limit` bytes."""

    data: bytes | None
    limit: int


def compose(
    smtp: SmtpSettings,
    recipients: list[str],
    message: Message,
    attachment: Attachment | None,
    *,
    message_id: str,
) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = smtp.from_
    mail["To"] = ", ".join(recipients)
    mail["Date"] = formatdate(message.occurred_at, usegmt=True)
    mail["Message-ID"] = f"<{message_id}@enrichwatch>"
    text, html = message.text(), message.html()
    if attachment is not None and attachment.data is None:
        note = (
            f"The results are larger than {attachment.limit} bytes, so they are not attached; "
            f"download them from {message.results_url}"
        )
        text += "\n" + note + "\n"
        html = html.replace("</body>", f"<p>{note}</p></body>")
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


async def send_email(
    smtp: SmtpSettings,
    recipients: list[str],
    message: Message,
    attachment: Attachment | None,
    *,
    message_id: str,
    timeout_s: float,
) -> dict[str, str]:
    """Send the mail; returns the recipients the server refused while taking it for the
    others, with its reason for each. The mail is sent then: sending it again would repeat
    it to everyone who has it, so they are reported rather than retried."""
    if not smtp.host:
        raise NotifyPermanentError(CHANNEL, "no SMTP server configured (smtp.host)")
    mail = compose(smtp, recipients, message, attachment, message_id=message_id)
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
        raise NotifyPermanentError(CHANNEL, f"login refused: {exc.code} {exc.message}") from None
    except aiosmtplib.SMTPResponseException as exc:
        reason = f"server said {exc.code} {exc.message}"
        if exc.code >= 500:
            raise NotifyPermanentError(CHANNEL, reason) from None
        raise NotifyTransientError(CHANNEL, reason) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise NotifyTransientError(CHANNEL, f"cannot send through {smtp.host}: {exc}") from None
    return {recipient: f"{reply.code} {reply.message}" for recipient, reply in refused.items()}
