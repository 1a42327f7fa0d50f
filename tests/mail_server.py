"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests: STARTTLS or implicit TLS with a
certificate from a test CA (``trustme``) the client is told to trust, and a login it checks.

Recipients starting with ``gone`` are refused for good (550), with ``busy`` for now (451).
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from responders.channels.smtp import SmtpSecurity, SmtpServer

USER = "stormwatch"
PASSWORD = "mail-secret"
SENDER = "Stormwatch <pager@shop.example>"


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts, with how each mail arrived."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.logins: list[tuple[str, str]] = []
        self.encrypted: list[bool] = []
        self.connections: list[int] = []
        """Which connection (its peer address) each mail came over."""
        self.port = 0

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == (USER, PASSWORD), handled=False)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.startswith("gone"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("busy"):
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        self.encrypted.append(server.transport.get_extra_info("ssl_object") is not None)
        self.connections.append(session.peer[1])
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def mail_server(security: SmtpSecurity, directory: Path) -> Iterator[tuple[Mailbox, SmtpServer]]:
    """A running server requiring ``security`` and a login, and the client's view of it (which
    trusts the test CA through the CA file written to ``directory``)."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = directory / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    box = Mailbox()
    options: dict[str, Any] = {"authenticator": box.authenticate, "auth_required": True}
    if security is SmtpSecurity.STARTTLS:
        options |= {"tls_context": server_tls, "require_starttls": True}
    elif security is SmtpSecurity.TLS:
        # aiosmtpd counts only STARTTLS as encryption for AUTH; this connection is TLS throughout
        options |= {"ssl_context": server_tls, "auth_require_tls": False}
    else:
        options |= {"auth_require_tls": False}
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    box.port = controller.port
    try:
        yield (
            box,
            SmtpServer(
                "127.0.0.1", box.port, SENDER, security, USER, PASSWORD, 5.0, ca_file=ca_file
            ),
        )
    finally:
        controller.stop()
