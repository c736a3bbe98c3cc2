"""The seeds' example bodies, as JSON text, and the documented examples built on them.

Kept as text and parsed with ``wire_json.loads`` so every number stays the
text the seed wrote (``8.99``, ``4711892728946``).  The desktop seed's own
example carries ``"currency": "string"`` (a placeholder, not a currency): it
is kept verbatim here for the tests, which show it is refused with a 400 on
``currency``; the documented desktop example is the same body with
``"currency": "EUR"``.
"""

from __future__ import annotations

from typing import Any

from supervisor_agent.api.wire_json import loads

DESKTOP_SEED_REQUEST = """{
"amount": "10,23",
"currency": "string",
"order_id": "Order_12345",
"transation_type": "Debit",
"force_authorization": false,
"cart": {
"european_article_numbering": 4711892728946,
"product_reference": "NF-a1690",
"type": "good",
"quantity": 1,
"name": "My first product",
"unit_price": 8.99,
"tax_rate": 0,
"discount": 0,
"total_amount": 8.99
},
"customer": {
"id": 283749291,
"firstname": "John",
"lastname": "Doe",
"email": "[email protected]"
},
"custom_data": {
"shop": "Opera",
"vendor": "Mario",
"newCustomer": true,
"event": 42
}
}"""

KIOSK_SEED_REQUEST = """{
  "amount": 100,
  "orderId": "Order_12345",
  "currency": "EUR",
  "basket": {
    "european_article_numbering": 4711892728946,
    "product_reference": "NF-a1690",
    "type": "good",
    "quantity": 1,
    "name": "My first product",
    "unit_price": 8.99,
    "tax_rate": 0,
    "discount": 0,
    "total_amount": 8.99
  },
  "customer": {
    "id": 283749291,
    "firstname": "John",
    "lastname": "Doe",
    "email": "[email protected]"
  },
  "customData": {
    "shop": "Opera",
    "vendor": "Mario",
    "newCustomer": true,
    "event": 42
  }
}"""

# Built from the POS API seed's field examples (the seed has no whole-body example).
POS_EXAMPLE_REQUEST = """{
  "order": {
    "order_id": "ORDER_1537532589263",
    "transaction_type": "Debit",
    "initialize_payment_terminal": true,
    "price": {
      "amount": 899,
      "currency": "EUR",
      "basket": [
        {
          "european_article_numbering": "4711892728946",
          "product_reference": "NF-a1690",
          "type": "good",
          "quantity": 1,
          "name": "My first product",
          "unit_price": 899,
          "tax_rate": 0,
          "discount": 0,
          "total_amount": 899,
          "product_category": 2
        }
      ]
    },
    "description": "POS payment",
    "custom_data": {"internal_reference": "ORD_987465", "customer_first_order": true}
  },
  "customer": {
    "customer_id": "283749291",
    "email": "john.doe@foobar99.com",
    "first_name": "Cathy",
    "last_name": "Doe",
    "birthdate": "1988-06-12",
    "gender": "U",
    "customer_location": {"country": "FR", "city": "Paris", "zip_code": "75001"}
  },
  "shipping": {"delivery_method": "STORE", "delivery_date": "2022-12-20"},
  "pos_technical_info": {
    "terminal_transaction_display": {
      "contract_array": [
        {"merchant_contract": "1234567", "rank": "001", "payment_application": "001"}
      ]
    },
    "push_to": "ECR",
    "force_authorization": false
  }
}"""


def desktop_seed_request() -> dict[str, Any]:
    data: dict[str, Any] = loads(DESKTOP_SEED_REQUEST)
    return data


def desktop_example_request() -> dict[str, Any]:
    data = desktop_seed_request()
    data["currency"] = "EUR"
    return data


def kiosk_seed_request() -> dict[str, Any]:
    data: dict[str, Any] = loads(KIOSK_SEED_REQUEST)
    return data


def pos_example_request() -> dict[str, Any]:
    data: dict[str, Any] = loads(POS_EXAMPLE_REQUEST)
    return data
