"""JSON from outside (EFS records, the control socket, IMDS) nested past Python's recursion limit is
refused like any other malformed input, never raised as RecursionError (which no reader expected)."""

from __future__ import annotations

import pytest

from mqguard.base.untrusted import load_json
from mqguard.efs import pause as pause_mod
from mqguard.serve.control import parse_request

DEEP = "[" * 5000 + "]" * 5000


def test_load_json_says_value_error_for_any_nesting() -> None:
    with pytest.raises(ValueError, match="nested"):
        load_json(DEEP)
    assert load_json('{"a": [1, 2]}') == {"a": [1, 2]}


def test_a_deeply_nested_pause_record_is_no_pause() -> None:
    with pytest.raises(ValueError):
        pause_mod.parse('{"version": 1, "x": ' + DEEP + "}")


def test_a_deeply_nested_control_request_is_a_bad_request() -> None:
    with pytest.raises(ValueError):
        parse_request(('{"v": 1, "op": "pause", "x": ' + DEEP + "}").encode())
