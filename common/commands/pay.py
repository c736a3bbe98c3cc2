"""``pay``: one payment on a terminal, start to finish.

Request: the :class:`~common.payment.PaymentRequest` (order id, amount in minor
units, numeric currency, type, force flag, POS number, optional Concert V3 target).
Reply: the terminal's :class:`~common.payment.PaymentResult`.  Errors: any code of
:mod:`common.commands.errors`, with ``money_may_have_moved``.

:func:`transaction_state` is the one rule that says what a reply means for the
payment: the verdict, ``failed`` (nothing happened at the terminal: the order id
may be posted again), or ``unknown`` (the customer may have paid).
"""

from __future__ import annotations

import enum
from typing import Any, Final

from pydantic import ValidationError

from common.commands import InvalidProperties
from common.commands.wire import _adapter
from common.payment import PaymentRequest, PaymentResult, PaymentStatus

NAME: Final = "pay"


class TransactionState(enum.StrEnum):
    """What a finished payment amounts to; every payment answer says it (``transactionState``)."""

    ACCEPTED = "accepted"  # the customer paid
    REFUSED = "refused"  # the terminal said no (or could not verify): nothing paid
    FAILED = "failed"  # it never reached the terminal: nothing paid, the order id is free
    UNKNOWN = "unknown"  # contact lost while the terminal had it: the customer may have paid


def to_properties(request: PaymentRequest) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": request.order_id,
        "amount": request.amount,
        "currency_numeric": request.currency_numeric,
        "transaction_type": str(request.transaction_type),
        "force_authorization": request.force_authorization,
        "pos_number": request.pos_number,
        "full_answer": request.full_answer,
        "private": request.private,
        "payment_application": request.payment_application,
        "target": request.target.to_dict() if request.target else None,
        "terminal": request.terminal,
    }
    return data


def from_properties(props: dict[str, Any]) -> PaymentRequest:
    """Re-check every property: a bad peer gets INVALID_PROPERTIES, never a crash."""
    if not isinstance(props.get("order_id"), str) or not props["order_id"]:
        raise InvalidProperties("order_id must be a non-empty string")
    amount = props.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidProperties("amount must be integer minor units")
    currency = props.get("currency_numeric")
    if not isinstance(currency, str) or not (len(currency) == 3 and currency.isdigit()):
        raise InvalidProperties("currency_numeric must be 3 digits")
    try:
        request: PaymentRequest = _adapter(PaymentRequest).validate_python(props)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidProperties(f"{where}: {first['msg']}") from None
    return request


def result_of(reply: dict[str, Any]) -> PaymentResult:
    """The reply as the typed result; ``ValueError`` if it is not one."""
    return PaymentResult.from_dict(reply)


def transaction_state(result: PaymentResult | None, money_may_have_moved: bool) -> TransactionState:
    """The terminal's verdict, or what an error reply means for the customer's money."""
    if result is not None:
        return (
            TransactionState.ACCEPTED
            if result.status is PaymentStatus.ACCEPTED
            else TransactionState.REFUSED
        )
    return TransactionState.UNKNOWN if money_may_have_moved else TransactionState.FAILED
