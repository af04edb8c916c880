"""Security headers on every HTTP response (issue 15, finding 12), as a pure ASGI middleware.

- ``X-Content-Type-Options: nosniff`` everywhere: a downloaded file (an uploaded "PDF") is never run as
  something the browser sniffed it to be.
- Frame protection everywhere (``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``): no page of
  ours can be framed for clickjacking (the sandbox card page, GraphiQL).
- ``Referrer-Policy: no-referrer``: download URLs and payment pages carry signed tokens in their paths.
- A Content-Security-Policy on HTML pages (GraphiQL, the sandbox payment pages): scripts only from our own
  origin plus the inline scripts the page itself carries, allowed by their SHA-256 hashes (computed from
  the page as it is served, so editing a page cannot silently break or widen the policy); no plugins, no
  base-URI games, forms post only to us. JSON answers get ``default-src 'none'``.
- ``Cache-Control: no-store`` on every answer that does not set its own, except the packaged static files
  of GraphiQL fetched without credentials: a shared proxy or the browser's disk must never keep a
  customer's data (GraphQL answers, downloads, payment pages).
- ``Strict-Transport-Security`` when ``KABINET_HSTS_MAX_AGE`` > 0: set it when a TLS-terminating proxy
  is in front (the app itself speaks plain HTTP behind it).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_MAX_HTML_BYTES = 1_000_000  # our pages are a few kB; anything larger is streamed with the strict policy

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def html_policy(body: bytes) -> str:
    """The CSP of one of our HTML pages: own-origin resources, its own inline scripts by hash."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    scripts = f"'self' {hashes}".strip()
    return (
        "default-src 'self'; "
        f"script-src {scripts}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "font-src 'self' data:; "
        "connect-src 'self' ws: wss:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    """Adds the headers above to every HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp, *, hsts_max_age: int = 0, static_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.static_prefixes = static_prefixes
        self.hsts = (
            [(b"strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains".encode())]
            if hsts_max_age > 0
            else []
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authenticated = any(name == b"authorization" for name, _ in scope.get("headers", ()))
        static = not authenticated and scope.get("path", "").startswith(self.static_prefixes)
        start: Message | None = None
        held: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    *self.hsts,
                ]
                if b"cache-control" not in names and not static:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = headers + [(n, v) for n, v in extra if n not in names]
                if content_type.startswith(b"text/html") and b"content-security-policy" not in names:
                    start = message  # hold it until the body shows which inline scripts the page has
                    return
                if b"content-security-policy" not in names:
                    message["headers"].append((b"content-security-policy", API_POLICY.encode()))
                await send(message)
                return
            if start is not None and message["type"] == "http.response.body":
                held.append(message.get("body", b""))
                size = sum(len(part) for part in held)
                if message.get("more_body", False) and size <= _MAX_HTML_BYTES:
                    return
                body = b"".join(held)
                policy = html_policy(body) if size <= _MAX_HTML_BYTES else API_POLICY
                start["headers"].append((b"content-security-policy", policy.encode()))
                await send(start)
                start = None
                await send({**message, "body": body})
                return
            await send(message)

        await self.app(scope, receive, wrapped)
