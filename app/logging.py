"""Structured logs with structlog: console text in development, JSON lines in production.

No log line carries a secret: :func:`configure_logging` installs a redaction step in two places —

- a log-record factory (:func:`redact_record`), so every stdlib record is masked when it is created, before
  any handler (ours, pytest's, a library's) sees it;
- a structlog processor (:func:`redact_event`), last in the chain, for structlog events and rendered
  tracebacks.

What is masked (:data:`MASK`): values of keys that name a secret (``code``, ``password``, ``*_token``,
``secret``, ``authorization``, ``cookie`` …) in dicts and in ``key=value`` / ``'key': 'value'`` text, bearer
credentials, JWTs, and six-digit numbers (one-time codes, e.g. in an SMS body). SQL parameters are kept out
of logs by the engine itself outside development (``hide_parameters``, ``app/db.py``), and production
refuses ``KABINET_DB_ECHO`` (``app/config_check.py``).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import structlog

from app.tracing import current_trace_id

MASK = "***"
"""What a masked value is replaced with."""

_SECRET_KEY_EXACT = frozenset({"code", "otp", "pin", "authorization", "cookie", "set-cookie", "x-api-key"})
_SECRET_KEY_PARTS = ("password", "passwd", "secret", "token", "signature", "api_key", "code_hash", "apikey")

_KEY_VALUE = re.compile(
    r"""(?ix)
    (                                              # the key and its separator stay
      \b(?:[\w-]*(?:password|passwd|secret|token|signature|api_key|apikey)[\w-]*|code|otp|authorization|cookie)
      ["']?\s*[:=]\s*
    )
    (?:"[^"]*"|'[^']*'|(?:bearer\s+|basic\s+)?[^\s"',;&)}\]]+)   # the value (quoted or not) is masked
    """
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+")
_SIX_DIGITS = re.compile(r"(?<![\d.:,])\d{6}(?!\d|[.,]\d)")


def is_secret_key(key: object) -> bool:
    """True when a dict key names a secret (``code``, ``refresh_token``, ``smtp_password`` …)."""
    if not isinstance(key, str):
        return False
    name = key.lower()
    return name in _SECRET_KEY_EXACT or any(part in name for part in _SECRET_KEY_PARTS)


def _mask_value(match: re.Match[str]) -> str:
    """The key and separator of a ``key=value`` match, then the mask (in the value's quotes, if any)."""
    value = match.group(0)[len(match.group(1)) :]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group(1)}{quote}{MASK}{quote}"


def redact_text(text: str) -> str:
    """``text`` with secrets masked: ``key=value`` of secret keys, bearer credentials, JWTs, 6-digit codes."""
    text = _JWT.sub(MASK, text)
    text = _BEARER.sub(lambda match: f"{match.group(1)} {MASK}", text)
    text = _KEY_VALUE.sub(_mask_value, text)
    return _SIX_DIGITS.sub(MASK, text)


def redact_value(value: Any) -> Any:
    """A log value with secrets masked: strings by :func:`redact_text`, dicts and lists element-wise."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: MASK if is_secret_key(key) else redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets in every key of an event (message, exception text, fields) but
    ``trace_id`` (32 hex digits of our own, which the six-digit rule would mangle)."""
    for key, value in list(event_dict.items()):
        if key != "trace_id":
            event_dict[key] = MASK if is_secret_key(key) else redact_value(value)
    return event_dict


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask secrets in a stdlib record: its message (with its arguments merged in) and its traceback."""
    if isinstance(record.msg, dict):  # a structlog event on its way to the formatter
        record.msg = redact_value(record.msg)
    else:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            message = None
        if message is not None:
            redacted = redact_text(message)
            if redacted != message:
                record.msg, record.args = redacted, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    return record


def add_trace_id(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` of the span active when the line was logged (``app/tracing.py``)."""
    record = event_dict.get("_record")
    trace_id = getattr(record, "trace_id", None) if record is not None else current_trace_id()
    if trace_id is not None:
        event_dict["trace_id"] = trace_id
    return event_dict


_factory_installed = False

CHATTY_LOGGERS = ("pgserver", "alembic")
"""Libraries whose INFO lines (initdb's output, every migration step) only matter when debugging."""


def install_record_redaction() -> None:
    """Wrap the process's log-record factory with :func:`redact_record` (once)."""
    global _factory_installed
    if _factory_installed:
        return
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = redact_record(previous(*args, **kwargs))
        trace_id = current_trace_id()
        if trace_id is not None:  # any handler (a test's capture too) sees the request's trace
            record.trace_id = trace_id
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Route stdlib and structlog records through one processor chain, secrets masked (see the module).

    Replaces the handler it installed before (and plain stream handlers such as ``basicConfig``'s); other
    handlers on the root logger (a test's log capture, a collector's) stay.
    """
    install_record_redaction()
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_id,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, redact_event, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler._kabinet = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    kept = [
        old
        for old in root.handlers
        if not getattr(old, "_kabinet", False) and type(old) is not logging.StreamHandler
    ]
    root.handlers[:] = [*kept, handler]
    root.setLevel(level.upper())
    # start-up chatter of the embedded PostgreSQL and of alembic only when asked for (DEBUG)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level.upper() == "DEBUG" else logging.WARNING)
