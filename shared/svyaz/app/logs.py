"""Structured JSON logs on stdout (Cloud Logging reads ``severity`` and ``message``).

Only ids, kinds and statuses are logged, never identifier values or message text."""

from __future__ import annotations

import json
import logging
import sys


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"severity": record.levelname, "message": record.getMessage(), "logger": record.name}
        extra = getattr(record, "svyaz", None)
        if extra:
            entry["svyaz"] = extra
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and where, not its message: messages may quote payloads.
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: int = logging.INFO) -> None:
    root = logging.getLogger("svyaz")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
