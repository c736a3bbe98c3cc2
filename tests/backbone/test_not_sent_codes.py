"""One table says, per error code, whether the customer may have paid; everyone reads it."""

from __future__ import annotations

import inspect

from common.commands import errors as codes
from common.commands.pay import TransactionState, transaction_state
from common.messages import Reply
from tp_manager.terminal import errors


def _terminal_error_classes() -> list[type[errors.TerminalError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.TerminalError)
    ]


def test_every_terminal_error_takes_its_default_from_the_one_table() -> None:
    for cls in _terminal_error_classes():
        assert cls.code in codes.MONEY_MAY_HAVE_MOVED, cls
        assert cls.money_may_have_moved is codes.MONEY_MAY_HAVE_MOVED[cls.code], cls


def test_channel_failures_mid_call_leave_the_outcome_unknown() -> None:
    # tp-manager died or did not answer while a pay was in flight: the customer may have paid
    assert codes.money_may_have_moved(codes.TP_MANAGER_RESTARTED)
    assert codes.money_may_have_moved(codes.TP_MANAGER_TIMEOUT)
    assert not codes.money_may_have_moved(codes.TP_MANAGER_UNAVAILABLE)
    # a code nobody knows (a newer tp-manager) is the safe side: unknown
    assert codes.money_may_have_moved("SOMETHING_NEW")


def test_the_flag_of_one_failure_crosses_the_channel() -> None:
    # a link lost before the terminal took the request: LINK_LOST, but nothing moved
    sent = Reply.failure("r1", codes.LINK_LOST, "lost before ENQ was acked", False)
    again = Reply.decode(sent.encode())
    assert again.money_may_have_moved is False
    assert transaction_state(None, again.money_may_have_moved) is TransactionState.FAILED
    # a reply that does not say takes the code's default
    bare = Reply.decode(b'{"id":"r2","ok":false,"error":{"code":"LINK_LOST","message":""}}')
    assert bare.money_may_have_moved is True
    assert transaction_state(None, bare.money_may_have_moved) is TransactionState.UNKNOWN
