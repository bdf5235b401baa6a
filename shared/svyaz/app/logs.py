"""Structured JSON logs on stdout (Cloud Logging reads ``severity`` and ``message``).

Only ids, kinds and statuses are logged, never identifier values or message text."""

from __future__ import annotations

import json
import logging
import sys
import traceback

# Cloud Logging groups the lines of one invocation by this label (functions-framework's header).
EXECUTION_ID_HEADER = "Function-Execution-Id"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"severity": record.levelname, "message": record.getMessage(), "logger": record.name}
        extra = getattr(record, "svyaz", None)
        if extra:
            entry["svyaz"] = extra
        execution_id = _execution_id()
        if execution_id:
            entry["logging.googleapis.com/labels"] = {"execution_id": execution_id}
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and its stack frames (code, not data), never its message:
            # messages may quote payloads.
            entry["exception"] = record.exc_info[0].__name__
            entry["stack_trace"] = "".join(traceback.format_tb(record.exc_info[2])).rstrip()
        return json.dumps(entry, ensure_ascii=False, default=str)


def _execution_id() -> str | None:
    flask = sys.modules.get("flask")  # only inside a function invocation
    if flask is None or not flask.has_request_context():
        return None
    return flask.request.headers.get(EXECUTION_ID_HEADER)


def configure(level: int = logging.INFO) -> None:
    root = logging.getLogger("svyaz")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
