"""The codes that let a register retry an order id are the 'nothing reached the terminal' ones."""

from __future__ import annotations

import inspect

from common import messages
from tp_manager.terminal import errors


def _terminal_error_classes() -> list[type[errors.TerminalError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.TerminalError) and cls is not errors.TerminalError
    ]


def test_every_safe_terminal_error_is_retryable_and_no_risky_one_is() -> None:
    for cls in _terminal_error_classes():
        if cls.money_may_have_moved:
            assert cls.code not in messages.NOTHING_SENT_CODES, cls
        else:
            assert cls.code in messages.NOTHING_SENT_CODES, cls


def test_channel_failures_mid_call_are_not_retryable() -> None:
    # tp-manager died or did not answer while a pay was in flight: the customer may have paid
    assert messages.TP_MANAGER_RESTARTED not in messages.NOTHING_SENT_CODES
    assert messages.TP_MANAGER_TIMEOUT not in messages.NOTHING_SENT_CODES
    assert messages.TP_MANAGER_UNAVAILABLE in messages.NOTHING_SENT_CODES
