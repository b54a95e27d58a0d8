"""Real local servers for the alerting tests, all on 127.0.0.1: an HTTP receiver standing in
for Slack, PagerDuty, webhooks and Alertmanager (records every request, answers from a
script), an aiosmtpd SMTP server (plain, STARTTLS, implicit TLS, AUTH) and a self-signed
certificate made with openssl."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer  # noqa: N811 (a class, not a constant)
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering (timeouts)


class Receiver:
    """An HTTP server answering with the scripted replies in order, then `default`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.default = Reply()
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Request(self.command, self.path, dict(self.headers.items()), body)
                    )
                    reply = receiver._script.popleft() if receiver._script else receiver.default
                    receiver._arrived.notify_all()
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout tests)

            do_POST = do_PUT = do_PATCH = _handle  # noqa: N815 (http.server's names)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count and time.monotonic() < deadline:
                self._arrived.wait(deadline - time.monotonic())
            return list(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def refused_url() -> str:
    """An http URL on a port nobody listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/x"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


# --- SMTP --------------------------------------------------------------------------------


def self_signed_cert(directory: Path, openssl: str) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid one day."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class Mailbox:
    """aiosmtpd handler: keeps every message; `data_reply` scripts the answer to DATA."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.data_reply = "250 Message accepted for delivery"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_reply.startswith("250"):
            self.messages.append(envelope)
        return self.data_reply


USER, PASSWORD = "alerts@example.com", "smtp-pw-s3cret"


def _authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@contextmanager
def smtp_server(
    mailbox: Mailbox,
    *,
    cert: tuple[Path, Path] | None = None,
    mode: str = "none",  # none | starttls | implicit
    auth: bool = False,
) -> Iterator[int]:
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    kwargs: dict[str, Any] = {}
    if mode == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    elif mode == "implicit":
        kwargs.update(ssl_context=context)
    if auth:
        # aiosmtpd cannot tell that an implicit-TLS session is encrypted: it is.
        kwargs.update(authenticator=_authenticator, auth_require_tls=mode == "starttls")
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
