"""Email over SMTP: STARTTLS (port 587), implicit TLS (465) or none (a local relay), optional
AUTH, several recipients, priority headers, a text and an HTML part.

SMTP answers are classified like HTTP ones: 4xx replies, timeouts and dropped or refused
connections are retryable; 5xx replies (a refused recipient, failed authentication), a
server without STARTTLS and certificate errors are permanent."""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from types import MappingProxyType

from mimir_limit_optimizer.alerting.codec import detail_lines, iso, title, truncate
from mimir_limit_optimizer.alerting.errors import SEND_FAILED, TIMEOUT, ChannelError
from mimir_limit_optimizer.alerting.model import Alert, AlertStatus, Priority
from mimir_limit_optimizer.alerting.redact import Redactor
from mimir_limit_optimizer.config.alerting import EmailSettings

SUBJECT_LIMIT = 200  # characters; long subjects are folded badly by many clients

# (X-Priority, Importance, Priority) headers per alert priority.
PRIORITY_HEADERS = MappingProxyType(
    {
        Priority.P0: ("1 (Highest)", "high", "urgent"),
        Priority.P1: ("2 (High)", "high", "urgent"),
        Priority.P2: ("3 (Normal)", "normal", "normal"),
        Priority.P3: ("5 (Lowest)", "low", "non-urgent"),
    }
)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _one_line(text: str) -> str:
    return " ".join(text.split())  # no CR/LF in a header


class EmailChannel:
    kind = "email"

    def __init__(self, settings: EmailSettings, *, name: str = "email") -> None:
        assert settings.smtp_host and settings.from_address and settings.to  # channels.build
        self.name = name
        self.settings = settings
        self._password = None if settings.password is None else settings.password.get_secret_value()
        self.redact = Redactor([self._password])

    def message(self, alert: Alert) -> EmailMessage:
        s = self.settings
        msg = EmailMessage()
        subject = _one_line(f"{s.subject_prefix} {title(alert)}".strip())
        msg["Subject"] = truncate(subject, SUBJECT_LIMIT)
        msg["From"] = s.from_address
        msg["To"] = ", ".join(s.to)
        msg["Date"] = formatdate(alert.timestamp, usegmt=True)
        msg["Message-ID"] = make_msgid(domain="mimir-limit-optimizer")
        x_priority, importance, priority = PRIORITY_HEADERS[alert.priority]
        msg["X-Priority"] = x_priority
        msg["Importance"] = importance
        msg["Priority"] = priority
        msg["X-Alert-Dedup-Key"] = truncate(_one_line(alert.dedup_key), SUBJECT_LIMIT)
        rows = [
            ("Status", alert.status.value),
            ("Priority", alert.priority.value),
            ("Severity", alert.severity.value),
            ("Type", alert.type),
            ("Component", alert.component),
            ("Tenant", alert.tenant or "-"),
            ("Time", iso(alert.timestamp)),
            ("Dedup key", alert.dedup_key),
        ]
        details = detail_lines(alert)
        text = "\n".join(
            [alert.summary, "", *(f"{k}: {v}" for k, v in rows)]
            + (["", "Details:", *details] if details else [])
        )
        msg.set_content(text + "\n")
        colour = "#2EB67D" if alert.status is AlertStatus.RESOLVED else "#E01E5A"
        cells = "".join(
            f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        detail_html = (
            "<h3>Details</h3><pre>" + html.escape("\n".join(details)) + "</pre>" if details else ""
        )
        msg.add_alternative(
            f"<html><body><h2 style='color:{colour}'>{html.escape(title(alert))}</h2>"
            f"<p>{html.escape(alert.summary)}</p><table>{cells}</table>{detail_html}"
            "</body></html>\n",
            subtype="html",
        )
        return msg

    def _context(self) -> ssl.SSLContext:
        if not self.settings.tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=self.settings.ca_file)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        assert s.smtp_host is not None
        if s.tls == "implicit":
            return smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.timeout, context=self._context()
            )
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.timeout)
        try:
            if s.tls == "starttls":
                smtp.ehlo()
                smtp.starttls(context=self._context())
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, alert: Alert) -> None:
        message = self.message(alert)
        try:
            with self._connect() as smtp:
                if self.settings.username:
                    smtp.login(self.settings.username, self._password or "")
                # Recipients refused while others accepted it are not retried: a retry
                # would send it again to those who have it.
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise self._error(
                f"authentication failed ({exc.smtp_code}): check alerting.email.username and "
                "password",
                retryable=False,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise self._error(
                f"every recipient was refused ({', '.join(map(str, codes))})",
                retryable=all(400 <= code < 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            reply = _text(exc.smtp_error)
            raise self._error(
                f"the server answered {exc.smtp_code} {_one_line(reply)[:200]}",
                retryable=400 <= exc.smtp_code < 500,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise self._error(
                f"{exc} (check alerting.email.tls and username against the server)", retryable=False
            ) from None
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):  # smtplib reports a read timeout so
                raise self._timeout() from None
            raise self._error(f"the server closed the connection: {exc}", retryable=True) from None
        except smtplib.SMTPException as exc:  # "AUTH not supported" and the like
            raise self._error(f"{exc} (check alerting.email)", retryable=False) from None
        except ssl.SSLError as exc:
            raise self._error(
                f"TLS failed: {exc.reason or exc} (check alerting.email.tls, caFile, tlsVerify)",
                retryable=False,
            ) from None
        except TimeoutError:
            raise self._timeout() from None
        except OSError as exc:
            raise self._error(
                f"cannot connect: {exc.strerror or type(exc).__name__}", retryable=True
            ) from None

    def _timeout(self) -> ChannelError:
        return ChannelError(
            f"SMTP {self.describe()}: no answer within {self.settings.timeout:g}s",
            retryable=True,
            error_type=TIMEOUT,
        )

    def _error(self, what: str, *, retryable: bool) -> ChannelError:
        return ChannelError(
            self.redact(f"SMTP {self.describe()}: {what}"),
            retryable=retryable,
            error_type=SEND_FAILED,
        )

    def describe(self) -> str:
        s = self.settings
        return f"smtp://{s.smtp_host}:{s.smtp_port} ({s.tls}) to {len(s.to)} recipient(s)"

    def close(self) -> None:
        """Nothing to close: one connection per message (alerts are rare; no idle sockets)."""
