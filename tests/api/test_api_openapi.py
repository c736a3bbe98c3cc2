"""GET /openapi.json: a valid OpenAPI 3 document that matches what the server does."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

from supervisor_agent.api import create_app
from supervisor_agent.api.examples import desktop_seed_request
from supervisor_agent.client import TerminalClient
from tests.api.conftest import Api, RecordingTpManager, own_journal, serve_api, settings
from tests.api.test_api_validation import DESKTOP_CASES, KIOSK_CASES

# Rules the JSON Schema cannot express; the server checks them (docs/http-api.md).
SERVER_ONLY_RULES = {"precision", "iso4217", "maximum", "conflicting_fields", "exclusive_minimum"}


def schema_validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    root = {"components": doc["components"], **schema}
    return jsonschema.Draft202012Validator(root)


def is_valid(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> bool:
    return schema_validator(doc, schema).is_valid(instance)


async def fetch_doc(api: Api, flavour: str | None = None) -> dict[str, Any]:
    status, doc, headers = await api.get(
        "/openapi.json" + (f"?flavour={flavour}" if flavour else "")
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    return doc


@pytest.mark.parametrize("flavour", ["desktop", "kiosk"])
async def test_document_is_valid_openapi(api: Api, flavour: str) -> None:
    doc = await fetch_doc(api, flavour)
    validate_spec(doc)
    assert doc["openapi"].startswith("3.")
    assert flavour in doc["info"]["title"]
    assert doc["components"]["securitySchemes"]["BasicAuth"] == {"type": "http", "scheme": "basic"}
    assert doc["paths"]["/v1/connector/healthcheck"]["get"]["security"] == []


async def test_default_flavour_and_bad_flavour(kiosk: Api) -> None:
    doc = await fetch_doc(kiosk)
    assert "kiosk" in doc["info"]["title"]
    status, body, _ = await kiosk.get("/openapi.json?flavour=pos")
    assert status == 400 and body["error"]["details"]["path"] == "flavour"


async def test_every_route_documented_and_every_documented_route_served(
    tpm: RecordingTpManager,
) -> None:
    async with own_journal() as (journal, notifier):
        async with serve_api(tpm, journal=journal, notifier=notifier) as api:
            doc = await fetch_doc(api)
            documented = {
                (method.upper(), path) for path, item in doc["paths"].items() for method in item
            }
            app = create_app(
                settings(),
                TerminalClient("tcp://127.0.0.1:1"),
                _never_stop,
                journal=journal,
                notifier=notifier,
            )
            served = {
                (route.method, route.resource.canonical)
                for route in app.router.routes()
                if route.method not in ("HEAD", "OPTIONS") and route.resource is not None
            }
            assert served == documented
            for method, path in documented:  # with credentials, every route is routed
                if (method, path) in {("GET", "/stop"), ("GET", "/cancel"), ("GET", "/events")}:
                    continue
                body = {} if method == "POST" else None
                concrete = path.replace("{order_id}", "ORDER-1")
                status, answer, _ = await api.request(method, concrete, body=body)
                code = answer["error"]["code"] if status >= 400 else None
                assert code not in ("NOT_FOUND", "METHOD_NOT_ALLOWED"), (method, path)


async def _never_stop() -> bool:
    raise AssertionError("not called")


@pytest.mark.parametrize("flavour", ["desktop", "kiosk"])
async def test_documented_examples_are_accepted(tpm: RecordingTpManager, flavour: str) -> None:
    async with serve_api(tpm, api_flavour=flavour) as api:
        doc = await fetch_doc(api)
        posted = 0
        for path, item in doc["paths"].items():
            op = item.get("post")
            if op is None:
                continue
            (content,) = op["requestBody"]["content"].values()  # POS API: application/*
            for example in content["examples"].values():
                body = example["value"]
                assert is_valid(doc, content["schema"], body), path
                status, answer, _ = await api.post(path, body)
                assert status == 200, (path, answer)
                ok_schema = op["responses"]["200"]["content"]["application/json"]["schema"]
                schema_validator(doc, ok_schema).validate(answer)
                posted += 1
        assert posted == 3


@pytest.mark.parametrize(
    ("name", "body", "path", "rule"), DESKTOP_CASES, ids=[c[0] for c in DESKTOP_CASES]
)
async def test_schema_and_server_agree_desktop(
    api: Api, name: str, body: dict, path: str, rule: str
) -> None:
    doc = await fetch_doc(api)
    request_schema = {"$ref": "#/components/schemas/DesktopPaymentRequest"}
    status, answer, _ = await api.post("/", body)
    assert status == 400
    schema_validator(doc, {"$ref": "#/components/schemas/ErrorResponse"}).validate(answer)
    if rule not in SERVER_ONLY_RULES:
        assert not is_valid(doc, request_schema, body), name


@pytest.mark.parametrize(
    ("name", "body", "path", "rule"), KIOSK_CASES, ids=[c[0] for c in KIOSK_CASES]
)
async def test_schema_and_server_agree_kiosk(
    kiosk: Api, name: str, body: dict, path: str, rule: str
) -> None:
    doc = await fetch_doc(kiosk)
    status, answer, _ = await kiosk.post("/", body)
    assert status == 400
    schema_validator(doc, {"$ref": "#/components/schemas/ErrorResponse"}).validate(answer)
    if rule not in SERVER_ONLY_RULES:
        assert not is_valid(doc, {"$ref": "#/components/schemas/KioskPaymentRequest"}, body)


async def test_documented_error_shapes(api: Api) -> None:
    doc = await fetch_doc(api)
    error_schema = schema_validator(doc, {"$ref": "#/components/schemas/ErrorResponse"})
    answers = [
        await api.post("/", desktop_seed_request()),
        await api.post("/", {"amount": 1}, auth=None),
        await api.post("/", raw=b"x", headers={"Content-Type": "text/plain"}),
        await api.post("/", raw=b"{", headers={"Content-Type": "application/json"}),
        await api.get("/nope"),
        await api.get("/reset"),
        await api.get("/version", headers={"Origin": "http://x"}),
    ]
    statuses = []
    for status, body, _ in answers:
        error_schema.validate(body)
        statuses.append(status)
        assert body["error"]["status"] == status
    assert statuses == [400, 401, 415, 400, 404, 501, 403]


@pytest.mark.parametrize("flavour", ["desktop", "kiosk"])
async def test_maintenance_answers_match_schemas(tpm: RecordingTpManager, flavour: str) -> None:
    async with serve_api(tpm, api_flavour=flavour) as api:
        doc = await fetch_doc(api)
        for path in ("/version", "/config", "/stop", "/cancel", "/check"):
            status, body, _ = await api.get(path)
            assert status == 200
            schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
                "schema"
            ]
            schema_validator(doc, schema).validate(body)
        status, body, _ = await api.get("/v1/connector/healthcheck", auth=None)
        schema = doc["paths"]["/v1/connector/healthcheck"]["get"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"]
        schema_validator(doc, schema).validate(body)


@pytest.mark.parametrize("flavour", ["desktop", "kiosk"])
async def test_zero_amounts_and_empty_baskets_agree(tpm: RecordingTpManager, flavour: str) -> None:
    """Found by comparing the schema with the server: the document accepted "0" (the server
    refuses zero) and refused {} as a basket (the server takes it as "no basket")."""
    async with serve_api(tpm, api_flavour=flavour) as api:
        doc = await fetch_doc(api)
        name = "DesktopPaymentRequest" if flavour == "desktop" else "KioskPaymentRequest"
        basket = "cart" if flavour == "desktop" else "basket"
        request_schema = {"$ref": f"#/components/schemas/{name}"}
        for amount in ("0", "0,00", " 00.0 ", 0):
            assert not is_valid(doc, request_schema, {"amount": amount}), amount
            status, body, _ = await api.post("/", {"amount": amount})
            assert status == 400 and body["error"]["details"]["rule"] == "exclusive_minimum"
        for amount in ("0.01", "10,23", " 5 ", "0,5", 9.99):
            assert is_valid(doc, request_schema, {"amount": amount}), amount
        body = {"amount": "1.00", basket: {}}
        assert is_valid(doc, request_schema, body)
        status, answer, _ = await api.post("/", body)
        assert status == 200, answer
        item = answer if flavour == "desktop" else answer[0]
        assert item[basket] == {} and item["warnings"] == []
