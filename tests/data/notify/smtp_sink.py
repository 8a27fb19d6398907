"""An SMTP server for the notification tests (aiosmtpd, Debian's python3-aiosmtpd).

Usage: smtp_sink.py <port> <out dir> <cert.pem> <key.pem> <user> <password>

STARTTLS is required before anything else and AUTH (over TLS only) before mail; recipients at
bounce.example are refused with 550. Each accepted message is written to <out dir> as
NNNN.eml, with X-Sink-Tls, X-Sink-Auth and X-Sink-Rcpt lines on top saying what the session
was. Prints "ready" once it listens.
"""
import os
import pathlib
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out, cert, key, user, password = sys.argv[1:7]


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().endswith("@bounce.example"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        count = len([n for n in os.listdir(out) if n.endswith(".eml")])
        path = pathlib.Path(out) / f"{count:04d}.eml"
        top = (
            f"X-Sink-Tls: {session.ssl is not None}\r\n"
            f"X-Sink-Auth: {bool(session.authenticated)}\r\n"
            f"X-Sink-Rcpt: {','.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(top + envelope.original_content)
        tmp.rename(path)
        return "250 Message accepted"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=int(port),
    server_hostname="localhost",
    tls_context=context,
    require_starttls=True,
    authenticator=authenticate,
    auth_require_tls=True,
)
controller.start()
print("ready", flush=True)
threading.Event().wait()
