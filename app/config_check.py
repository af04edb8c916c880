"""What production refuses: every unsafe setting, found before anything starts.

:func:`problems` lists each setting that is unsafe for production (the sandbox acquirer, console SMS and
e-mail, demo data, a weak secret, the SQL echo, a shifted clock …). ``kabinet serve`` with
``KABINET_ENV=production`` refuses to start (exit code 2) with one message listing all of them,
:func:`app.main.create_app` raises :class:`UnsafeConfiguration` for them (so no entry point — the uvicorn
factory ``app.main:app_from_env`` included — gets past it), and ``kabinet check-config`` prints the same
report without starting anything.

The rules read the settings as production would, whatever ``KABINET_ENV`` says, so an operator can check a
configuration before switching it on.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

from app.settings import Settings

MIN_SECRET_CHARS = 43
"""Shortest accepted secret: 32 random bytes are 43 url-safe base64 characters (``token_urlsafe(32)``)."""

MIN_SECRET_DISTINCT = 12
"""Fewest distinct characters of an accepted secret (random url-safe tokens have ~30, hex ones 16)."""

MIN_SECRET_BITS = 128.0
"""Least estimated entropy of an accepted secret (length x per-character Shannon entropy), in bits."""

GENERATE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
"""The command the README and the refusal message suggest for a new secret."""

_PLACEHOLDERS = re.compile(r"change.?me|changeit|password|passw0rd|secret|example|kabinet|qwerty")
"""Words (lower case, six letters or more, so random tokens practically never contain one) that mark a
hand-made or copied value rather than a generated one."""


class UnsafeConfiguration(RuntimeError):
    """Production was asked to start with unsafe settings; ``problems`` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(report(problems))


def secret_weakness(value: str | None) -> str | None:
    """Why ``value`` is not a strong secret (``None`` when it is one).

    Strong: at least :data:`MIN_SECRET_CHARS` characters, no placeholder words, enough distinct characters
    and estimated entropy, and not compressible (a repeated pattern). Values made by
    ``secrets.token_urlsafe(32)`` or longer (or ``secrets.token_hex(32)``) always pass.
    """
    if not value:
        return "is empty"
    if len(value) < MIN_SECRET_CHARS:
        return f"is {len(value)} characters long; at least {MIN_SECRET_CHARS} random ones are needed"
    if _PLACEHOLDERS.search(value):
        return "looks like a placeholder (contains a common word)"
    counts = Counter(value)
    bits = -sum(n * math.log2(n / len(value)) for n in counts.values())
    if len(counts) < MIN_SECRET_DISTINCT or bits < MIN_SECRET_BITS:
        return "has too little entropy (too few different characters)"
    if _has_pattern(value):
        return "has too little entropy (a repeated or sequential pattern)"
    return None


def _has_pattern(value: str, repeat: int = 10, run: int = 8) -> bool:
    """True when ``repeat`` characters occur twice, or ``run`` characters go in sequence (``abcdefgh``).

    Both are practically impossible in generated secrets (below one in ten million for 128 hex digits)."""
    seen: set[str] = set()
    for start in range(len(value) - repeat + 1):
        chunk = value[start : start + repeat]
        if chunk in seen:
            return True
        seen.add(chunk)
    for start in range(len(value) - run + 1):
        chunk = value[start : start + run]
        steps = {ord(b) - ord(a) for a, b in itertools.pairwise(chunk)}
        if len(steps) == 1 and abs(next(iter(steps))) <= 1:
            return True
    return False


def problems(settings: Settings, *, workers: int = 1) -> list[str]:
    """Every setting that production refuses, as one sentence each (empty: safe to start).

    ``workers`` is the number of processes ``kabinet serve --workers`` would start on this host.
    """
    found: list[str] = []
    if not settings.database_url:
        found.append("DATABASE_URL is not set: production does not run on the embedded PostgreSQL")

    # --- payments (finding 1): the sandbox acquirer accepts made-up payments
    gateway = settings.payment_gateway
    if gateway == "sandbox" and not settings.sandbox_in_production:
        found.append(
            "KABINET_PAYMENT_GATEWAY is sandbox: its pages mark payments paid without money; set "
            "KABINET_PAYMENT_GATEWAY=yookassa (KABINET_SANDBOX_IN_PRODUCTION=true only on a staging stand)"
        )
    elif gateway not in ("sandbox", "yookassa"):
        found.append(f"KABINET_PAYMENT_GATEWAY is {gateway!r}: use yookassa")
    if gateway == "yookassa" and not (settings.yookassa_shop_id and settings.yookassa_secret_key):
        found.append("KABINET_PAYMENT_GATEWAY is yookassa but KABINET_YOOKASSA_SHOP_ID/_SECRET_KEY are unset")
    if settings.payment_webhook_secret is not None:
        weakness = secret_weakness(settings.payment_webhook_secret)
        if weakness:
            found.append(f"KABINET_PAYMENT_WEBHOOK_SECRET {weakness}")

    # --- billing exchange (issue 18): no default key ships; the one in the docs' examples is refused
    if settings.exchange_key_sha256 is not None:
        from app.exchange_api import EXAMPLE_KEY, MAX_KEYS, key_hashes, key_sha256

        hashes = key_hashes(settings.exchange_key_sha256)
        if not hashes or not all(re.fullmatch(r"[0-9a-f]{64}", known) for known in hashes):
            found.append(
                "KABINET_EXCHANGE_KEY_SHA256 is not a hex SHA-256 (or a comma-separated few while rotating): "
                "make one with `kabinet exchange-key`"
            )
        elif len(hashes) > MAX_KEYS:
            found.append(
                f"KABINET_EXCHANGE_KEY_SHA256 holds {len(hashes)} keys: at most {MAX_KEYS} (old and new)"
                " while rotating; remove the retired ones"
            )
        elif key_sha256(EXAMPLE_KEY) in hashes:
            found.append(
                "KABINET_EXCHANGE_KEY_SHA256 is the example key's from the docs: run `kabinet exchange-key`"
            )

    # --- messages (finding 7): the console provider would print codes into the server's output
    if not settings.smtp_host:
        found.append("KABINET_SMTP_HOST is not set: e-mails (with one-time codes) would go to the console")
    if not settings.sms_gateway_url:
        found.append("KABINET_SMS_GATEWAY_URL is not set: SMS (with one-time codes) would go to the console")
    if settings.db_echo:
        found.append("KABINET_DB_ECHO is on: SQL statements and parameters (personal data) would be logged")

    # --- demo data (finding 2): published passwords
    if settings.demo_on_start:
        found.append("KABINET_DEMO_ON_START is true: demo users with published passwords would be loaded")

    # --- the secret (finding 8)
    if "secret_key" not in settings.model_fields_set:
        found.append(f"KABINET_SECRET_KEY is not set; generate one with: {GENERATE_SECRET}")
    else:
        weakness = secret_weakness(settings.secret_key)
        if weakness:
            found.append(f"KABINET_SECRET_KEY {weakness}; generate one with: {GENERATE_SECRET}")

    # --- the rest
    if settings.graphiql:
        found.append("KABINET_GRAPHIQL is true: GraphiQL would be served to anonymous callers")
    if workers > 1 and not settings.redis_url:
        found.append(f"{workers} workers without REDIS_URL: production does not run on an embedded Redis")
    if settings.clock_start is not None:
        found.append("KABINET_CLOCK_START is set: production runs on the real clock")
    return found


def report(found: list[str]) -> str:
    """One message listing every problem (what ``kabinet serve`` and ``kabinet check-config`` print)."""
    if not found:
        return "The configuration is safe for production."
    lines = [f"Refusing to run in production: {len(found)} unsafe setting(s):"]
    lines += [f"  - {item}" for item in found]
    lines.append("Fix them in the environment (see the README's Production section), then start again.")
    return "\n".join(lines)
