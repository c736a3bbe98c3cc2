"""Payments in the three shapes: the seeds' bodies, every documented field, and what
tp-manager is actually asked (amount in minor units, currency, forced authorization)."""

from __future__ import annotations

import base64
import re
from decimal import Decimal

from common.messages import Reply, Request
from supervisor_agent.api.examples import (
    desktop_example_request,
    desktop_seed_request,
    kiosk_seed_request,
    pos_example_request,
)
from supervisor_agent.api.models_kiosk import RECEIPT_FIELDS
from tests.api.conftest import (
    Api,
    RecordingTpManager,
    own_journal,
    payment_result,
    serve_api,
)

DESKTOP_FIELDS = {
    "paymentStatus",
    "notificationHipaySent",
    "numberOfNotificationSent",
    "errorCode",
    "errorDescription",
    "amount",
    "currency",
    "orderId",
    "transationType",
    "forceAuthorization",
    "cart",
    "customer",
    "customData",
    "warnings",
    "transactionState",
}
KIOSK_FIELDS = {
    "status",
    "error",
    "receipt",
    "ticket",
    "amount",
    "currency",
    "orderId",
    "basket",
    "customer",
    "customData",
    "notificationHipaySent",
    "warnings",
    "transactionState",
}


def the_pay(tpm: RecordingTpManager) -> dict:
    pays = [r for r in tpm.received if r.command == "pay"]
    assert len(pays) == 1, tpm.commands()
    return pays[0].properties


async def test_desktop_seed_body_verbatim_is_refused_on_currency(api: Api) -> None:
    status, body, _ = await api.post("/", desktop_seed_request())
    assert status == 400
    err = body["error"]
    assert err["code"] == "INVALID_REQUEST"
    assert err["details"]["path"] == "currency"
    assert err["details"]["rule"] == "iso4217"
    assert err["details"]["value"] == "string"
    assert "currency" in err["message"]
    assert api.tpm.received == []


async def test_desktop_seed_body_with_currency_fixed(api: Api) -> None:
    request = desktop_example_request()
    status, body, _ = await api.post("/", request)
    assert status == 200, body
    assert set(body) == DESKTOP_FIELDS
    assert body["paymentStatus"] == "SUCCESS"
    assert body["notificationHipaySent"] is False  # no notifier wired: never faked
    assert body["numberOfNotificationSent"] == 0
    assert body["errorCode"] is None
    assert body["errorDescription"] is None
    assert body["amount"] == "10,23"  # echoed as sent: a string with a decimal comma
    assert body["currency"] == "EUR"
    assert body["orderId"] == "Order_12345"
    assert body["transationType"] == "Debit"
    assert body["forceAuthorization"] is False
    # the seed's cart totals 8.99 against an amount of 10.23: dropped, as the seed's {} shows
    assert body["cart"] == {}
    assert len(body["warnings"]) == 1 and "does not match" in body["warnings"][0]
    assert body["customer"] == request["customer"]
    assert body["customData"] == {
        "shop": "Opera",
        "vendor": "Mario",
        "newCustomer": True,
        "event": 42,
    }
    props = the_pay(api.tpm)
    assert props["amount"] == 1023
    assert props["currency_numeric"] == "978"
    assert props["transaction_type"] == "debit"
    assert props["force_authorization"] is False
    assert props["order_id"] == "Order_12345"
    assert props["target"] is None


async def test_desktop_matching_cart_is_kept_object_or_array(api: Api) -> None:
    item = desktop_example_request()["cart"]
    for cart in (item, [item]):
        request = {"amount": 8.99, "cart": cart}
        status, body, _ = await api.post("/", request)
        assert status == 200, body
        assert body["cart"] == cart
        assert body["warnings"] == []
        assert body["amount"] == Decimal("8.99")  # a number stays a number


async def test_desktop_malformed_cart_does_not_fail_payment(api: Api) -> None:
    for cart in ({"name": "no reference"}, "a string", [{"type": "gift"}], 42):
        status, body, _ = await api.post("/", {"amount": "8.99", "cart": cart})
        assert status == 200, body
        assert body["paymentStatus"] == "SUCCESS"
        assert body["cart"] == {}
        assert body["warnings"] and "cart" in body["warnings"][0]


async def test_order_id_generated_when_absent(api: Api) -> None:
    status, body, _ = await api.post("/", {"amount": 5})
    assert status == 200
    assert re.fullmatch(r"ECR_\d{8}_\d{9}_[0-9a-f]{6}", body["orderId"])
    assert the_pay(api.tpm)["order_id"] == body["orderId"]
    assert body["currency"] == "EUR"  # the seed's default
    assert body["transationType"] == "Debit"


async def test_customer_giving_a_name_in_both_spellings_alike_pays(api: Api) -> None:
    """The seed's table and example spellings of one field may both be sent if they agree
    (a differing pair is a 400, tests/api/test_api_validation.py); echoed as sent."""
    customer = {"id": 7, "customer_id": "7", "firstname": "Ann", "firstName": "Ann"}
    status, body, _ = await api.post("/", {"amount": 5, "customer": customer})
    assert status == 200, body
    assert body["customer"] == customer


async def test_authorization_threshold_and_forced_authorization(api: Api) -> None:
    # threshold is 100 (major units): 99.99 is below, 100.00 is at it
    cases = [
        ({"amount": "99,99"}, False),
        ({"amount": "100"}, True),
        ({"amount": 150.5}, True),
        ({"amount": "1.00", "force_authorization": True}, True),
    ]
    for request, forced in cases:
        api.tpm.received.clear()
        status, body, _ = await api.post("/", request)
        assert status == 200, body
        assert the_pay(api.tpm)["force_authorization"] is forced, request
        assert body["forceAuthorization"] is forced


async def test_transaction_types_and_misspelling(api: Api) -> None:
    for key in ("transaction_type", "transation_type"):
        for name in ("Debit", "Credit", "Cancel"):
            api.tpm.received.clear()
            status, body, _ = await api.post("/", {"amount": "1.00", key: name})
            assert status == 200, body
            assert body["transationType"] == name
            assert the_pay(api.tpm)["transaction_type"] == name.lower()


async def test_currency_exponent_zero_and_three(api: Api) -> None:
    status, body, _ = await api.post("/", {"amount": "1500", "currency": "JPY"})
    assert status == 200, body
    props = the_pay(api.tpm)
    assert (props["amount"], props["currency_numeric"]) == (1500, "392")
    api.tpm.received.clear()
    status, body, _ = await api.post("/", {"amount": "1,234", "currency": "BHD"})
    assert status == 200, body
    assert the_pay(api.tpm)["amount"] == 1234


async def test_kiosk_seed_body_verbatim(kiosk: Api) -> None:
    request = kiosk_seed_request()
    status, body, _ = await kiosk.post("/", request)
    assert status == 200, body
    assert isinstance(body, list) and len(body) == 1
    item = body[0]
    assert set(item) == KIOSK_FIELDS
    assert item["status"] == "Success"
    assert item["error"] is None
    assert item["amount"] == 100  # echoed as sent: a JSON number
    assert item["currency"] == "EUR"
    assert item["orderId"] == "Order_12345"
    # basket totals 8.99 against 100: the seed's rule creates the order with an empty cart
    # and says why; the answer echoes the basket as sent, as the kiosk seed's own answer
    # does (the desktop seed's answers {} for its cart: tests below)
    assert item["basket"] == request["basket"]
    assert "does not match" in item["warnings"][0]
    assert item["customer"] == request["customer"]
    assert item["customData"] == request["customData"]
    assert item["notificationHipaySent"] is False
    receipt = item["receipt"]
    assert list(receipt) == list(RECEIPT_FIELDS)  # every key the seed shows, in its order
    assert receipt["amount"] == "00010000"
    assert receipt["currencyNumCode"] == "978"
    assert receipt["currencyAlphaCode"] == "EUR"
    assert receipt["currencyFractionPart"] == "2"
    assert receipt["primaryAccountNumber"] == "497010XXXXXX1234"
    assert receipt["authorizationNumber"] == "136967"
    assert receipt["AID"] == "A0000000041010"
    assert re.fullmatch(r"\d{6}", receipt["localDate"])
    assert re.fullmatch(r"\d{6}", receipt["localTime"])
    assert receipt["SIRET"] is None  # not in a Concert answer: null, never invented
    assert "MONTANT:100,00 EUR" in item["ticket"]
    assert item["ticket"].endswith("||")
    props = the_pay(kiosk.tpm)
    assert (props["amount"], props["currency_numeric"], props["order_id"]) == (
        10000,
        "978",
        "Order_12345",
    )
    assert props["force_authorization"] is True  # 100 EUR is at the threshold of 100


async def test_kiosk_dropped_basket_is_echoed_but_not_journaled(tpm: RecordingTpManager) -> None:
    """The kiosk seed's answer echoes a basket that does not match the amount as it was
    sent, while its rule creates the order with an empty cart: the journal (what HiPay is
    told) holds none, the answer and its lookup echo the basket and warn."""
    request = kiosk_seed_request()
    async with own_journal() as (journal, notifier):
        async with serve_api(tpm, api_flavour="kiosk", journal=journal, notifier=notifier) as api:
            status, body, _ = await api.post("/", request)
            assert status == 200, body
            assert body[0]["basket"] == request["basket"]
            assert body[0]["warnings"]
            status, looked_up, _ = await api.get("/transactions/Order_12345")
            assert (status, looked_up) == (200, body)
        record = journal.get("Order_12345")
        assert record is not None and record.request["basket"] == []


async def test_kiosk_matching_basket_kept(kiosk: Api) -> None:
    request = kiosk_seed_request()
    request["amount"] = Decimal("8.99")
    status, body, _ = await kiosk.post("/", request)
    assert status == 200
    assert body[0]["basket"] == request["basket"]
    assert body[0]["warnings"] == []


async def test_pan_is_masked_whatever_the_driver_says(tpm: RecordingTpManager) -> None:
    async def leaky(request):
        return Reply.success(
            request.id, payment_result(request.properties, masked_pan="4970101234561234")
        )

    tpm.responders["pay"] = leaky
    async with serve_api(tpm, api_flavour="kiosk") as kiosk:
        status, body, _ = await kiosk.post("/", {"amount": 1})
    assert status == 200
    assert body[0]["receipt"]["primaryAccountNumber"] == "497010XXXXXX1234"
    assert "4970101234561234" not in body[0]["ticket"]


async def test_pos_order_example(api: Api) -> None:
    request = pos_example_request()
    status, body, _ = await api.post("/v1/connector/order", request)
    assert status == 200, body
    # no "error" on a success: the seed's OrderResponse.error is an object, not nullable
    assert set(body) == {
        "paymentStatus",
        "receipt",
        "order",
        "customer",
        "shipping",
        "pos_technical_info",
        "warnings",
        "transactionState",
    }
    assert body["paymentStatus"] == "Success"
    assert body["transactionState"] == "accepted"
    receipt = base64.b64decode(body["receipt"]).decode()
    assert "MONTANT:8,99 EUR" in receipt
    assert body["order"] == request["order"]
    assert body["customer"] == request["customer"]
    assert body["shipping"] == request["shipping"]
    assert body["pos_technical_info"] == request["pos_technical_info"]
    assert body["warnings"] == []
    props = the_pay(api.tpm)
    assert (props["amount"], props["currency_numeric"], props["order_id"]) == (
        899,
        "978",
        "ORDER_1537532589263",
    )


async def test_pos_basket_mismatch_goes_on_empty(api: Api) -> None:
    request = pos_example_request()
    request["order"]["price"]["amount"] = 1000
    status, body, _ = await api.post("/v1/connector/order", request)
    assert status == 200
    assert body["order"]["price"]["basket"] == []
    assert body["warnings"]
    # fees count towards the amount (a new order: the same id would replay the first answer)
    request["order"]["order_id"] = "ORDER_WITH_FEES"
    request["order"]["price"].update(tax_fees=50, shipping_fees=51)
    api.tpm.received.clear()
    status, body, _ = await api.post("/v1/connector/order", request)
    assert status == 200
    assert body["warnings"] == []


async def test_pos_allowed_terminal_is_targeted(tpm: RecordingTpManager) -> None:
    request = pos_example_request()
    tech = request["pos_technical_info"]
    tech["host_information"] = {"host": "192.168.1.50", "port": 8888}
    tech["protocol"] = "ConcertV3.2"
    async with serve_api(tpm, allowed_terminals=("192.168.1.50:8888",)) as api:
        status, body, _ = await api.post("/v1/connector/order", request)
        assert status == 200, body
        assert the_pay(tpm)["target"] == {
            "protocol": "concert-v3",
            "version": "0302",
            "host": "192.168.1.50",
            "port": 8888,
        }
        tech["host_information"]["port"] = 9999
        status, body, _ = await api.post("/v1/connector/order", request)
        assert status == 403
        assert body["error"]["code"] == "TERMINAL_NOT_ALLOWED"
    assert tpm.commands() == ["pay"]


async def test_pos_device_information_of_the_targeted_terminal_is_not_the_configured_ones(
    tpm: RecordingTpManager,
) -> None:
    """``device_information`` describes the terminal the order goes to: with
    ``host_information`` naming another (allowed) terminal, its serial number is that
    terminal's, not the configured one's, and the order is paid there.  Without
    ``host_information`` the order goes to the configured terminal, whose serial it must be."""
    request = pos_example_request()
    tech = request["pos_technical_info"]
    tech["host_information"] = {"host": "192.168.1.50", "port": 8888}
    tech["device_information"] = {"serial_number": "SN-LANE-2", "manufacturer": "Ingenico"}
    async with serve_api(
        tpm, allowed_terminals=("192.168.1.50:8888",), serial_number="SN-TEST-0001"
    ) as api:
        status, body, _ = await api.post("/v1/connector/order", request)
        assert status == 200, body
        assert the_pay(tpm)["target"]["host"] == "192.168.1.50"
        del tech["host_information"]
        request["order"]["order_id"] = "ORDER_CONFIGURED_TERMINAL"
        status, body, _ = await api.post("/v1/connector/order", request)
        assert status == 400
        assert body["error"]["details"]["rule"] == "device_mismatch"
    assert tpm.commands() == ["pay"]


async def test_pos_answer_leaves_out_echoes_the_order_did_not_send(api: Api) -> None:
    """The seed's OrderResponse echoes customer and shipping as RootOrder objects (not
    nullable): an order without them is answered without them, not with null, and so is its
    lookup (rendered from the journal)."""
    request = pos_example_request()
    request["order"]["order_id"] = "ORDER_NO_CUSTOMER"
    del request["customer"]
    del request["shipping"]
    status, body, _ = await api.post("/v1/connector/order", request)
    assert status == 200, body
    assert "customer" not in body and "shipping" not in body
    assert body["order"] == request["order"]
    assert body["pos_technical_info"] == request["pos_technical_info"]
    status, looked_up, _ = await api.get("/transactions/ORDER_NO_CUSTOMER")
    assert status == 200
    assert looked_up == body


async def test_pos_answer_leaves_out_echoes_the_order_sent_as_null(api: Api) -> None:
    """A POS backend whose JSON writer puts ``null`` for an unset object has no customer and
    no shipping either: its answer leaves them out as well (the seed's OrderResponse objects
    are not nullable), and so does its lookup."""
    request = pos_example_request()
    request["order"]["order_id"] = "ORDER_NULL_CUSTOMER"
    request["customer"] = None
    request["shipping"] = None
    status, body, _ = await api.post("/v1/connector/order", request)
    assert status == 200, body
    assert "customer" not in body and "shipping" not in body
    status, looked_up, _ = await api.get("/transactions/ORDER_NULL_CUSTOMER")
    assert status == 200
    assert looked_up == body


async def test_pos_answer_leaves_out_the_error_and_receipt_it_has_not(
    tpm: RecordingTpManager,
) -> None:
    """The seed's OrderResponse ``error`` (an object) and ``receipt`` (a string) are not
    nullable: a refusal has both; a payment that never reached the terminal has an error
    and no receipt (no answer to print), and leaves ``receipt`` out rather than null."""

    async def refused(request: Request) -> Reply:
        return Reply.success(
            request.id,
            payment_result(request.properties, status="refused", failure_reason="refused"),
        )

    async def link_down(request: Request) -> Reply:
        return Reply.failure(request.id, "LINK_DOWN", "no terminal on the line")

    async with serve_api(tpm) as api:
        answers = {}
        for name, responder in (("refused", refused), ("failed", link_down)):
            tpm.responders["pay"] = responder
            request = pos_example_request()
            request["order"]["order_id"] = f"ORDER_{name.upper()}"
            status, body, _ = await api.post("/v1/connector/order", request)
            assert status == 200, body
            assert body["transactionState"] == name
            status, looked_up, _ = await api.get(f"/transactions/ORDER_{name.upper()}")
            assert (status, looked_up) == (200, body)
            answers[name] = body
    assert answers["refused"]["error"]["errorCode"] == "REFUSED"
    assert "MONTANT:8,99 EUR" in base64.b64decode(answers["refused"]["receipt"]).decode()
    assert answers["failed"]["error"]["errorCode"] == "LINK_DOWN"
    assert "receipt" not in answers["failed"]
