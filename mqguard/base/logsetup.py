"""Logging to stderr as text or JSON lines (journald adds its own metadata)."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from typing import Any, Callable, Dict, Mapping, Optional, TextIO


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("qmgr", "mqguard_state"):
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"))


class Context(logging.Filter):
    """Adds the queue manager and mqguard's current state to every record.

    Upper-case attributes become journal fields (QMGR=, MQGUARD_STATE=); the
    lower-case ones are used by the JSON formatter.
    """

    def __init__(self, qmgr: str = "", state: Callable[[], str] = lambda: "") -> None:
        super().__init__()
        self.qmgr = qmgr
        self.state = state

    def filter(self, record: logging.LogRecord) -> bool:
        state = self.state()
        record.qmgr = record.QMGR = self.qmgr
        record.mqguard_state = record.MQGUARD_STATE = state
        return True


def journal_handler(sender: Optional[Callable[..., None]] = None) -> Optional[logging.Handler]:
    """systemd-python's JournalHandler, when importable."""
    try:
        journal = importlib.import_module("systemd.journal")
    except ImportError:
        return None
    kwargs: Dict[str, Any] = {"SYSLOG_IDENTIFIER": "mqguard"}
    if sender is not None:
        kwargs["sender_function"] = sender
    handler: logging.Handler = journal.JournalHandler(**kwargs)
    return handler


def under_journald(environ: Optional[Mapping[str, str]] = None) -> bool:
    """systemd sets JOURNAL_STREAM when stderr goes to the journal."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM"))


def setup(level: str = "info", fmt: str = "text", stream: Optional[TextIO] = None,
          context: Optional[Context] = None, journal: bool = False) -> str:
    """Configure the root logger; returns where logs go ("journal", "stderr-json", "stderr")."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    target = "stderr"
    handler = journal_handler() if journal and fmt != "json" else None
    if handler is not None:
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        target = "journal"
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        if fmt == "json":
            target = "stderr-json"
            handler.setFormatter(JsonFormatter())
        elif under_journald():
            # journald stamps time and unit itself; keep the line short.
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if context is not None:
        handler.addFilter(context)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # boto's own chatter is only interesting when debugging
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level != "debug" else logging.INFO)
    return target
