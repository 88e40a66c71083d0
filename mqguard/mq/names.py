"""Queue-manager names and the directory names MQ derives from them."""

from __future__ import annotations

from mqguard.config.values import validate_qmgr_name


def directory_name(qmgr: str) -> str:
    """MQ's mangling of a queue-manager name into a directory name."""
    validate_qmgr_name(qmgr)
    return qmgr.replace(".", "!").replace("/", "&")


__all__ = ["directory_name", "validate_qmgr_name"]
