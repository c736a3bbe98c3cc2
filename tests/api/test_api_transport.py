"""Auth, CORS and body rules: each refusal is JSON, and nothing reaches tp-manager."""

from __future__ import annotations

import asyncio
import base64

import aiohttp

from supervisor_agent.api.bodies import MAX_BODY_BYTES
from supervisor_agent.api.examples import desktop_example_request, pos_example_request
from supervisor_agent.api.wire_json import dumps
from tests.api.conftest import Api, RecordingTpManager, basic, serve_api


def assert_error(body: dict, status: int, code: str) -> dict:
    assert set(body) == {"error"}
    err = body["error"]
    assert err["status"] == status
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    return err


# --- auth


async def test_missing_auth_is_401_with_challenge(api: Api) -> None:
    status, body, headers = await api.post("/", desktop_example_request(), auth=None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic realm=")
    assert_error(body, 401, "UNAUTHORIZED")
    assert api.tpm.received == []


async def test_wrong_password_wrong_user_and_malformed_are_401(api: Api) -> None:
    for auth in (
        basic(password="nope"),
        basic(user="someone", password="s3cret-pass"),
        basic(user="", password=""),
        "Basic !!!notbase64",
        "Bearer abc",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:pw").decode(),  # not UTF-8
        "Basic w\u00e9\u00e9=",  # not ASCII: base64 of it is a ValueError, not a binascii one
        "basic",  # a scheme with no token
    ):
        status, body, headers = await api.post("/", desktop_example_request(), auth=auth)
        assert status == 401, auth
        assert "WWW-Authenticate" in headers
        assert_error(body, 401, "UNAUTHORIZED")
    assert api.tpm.received == []


async def test_right_credentials_pass(api: Api) -> None:
    status, body, _ = await api.get("/version")
    assert status == 200
    assert body == {"version": "0.1.0-concertv2-linux"}


async def test_every_route_but_healthcheck_needs_auth(api: Api) -> None:
    for method, path in [
        ("POST", "/"),
        ("POST", "/payment"),
        ("POST", "/v1/connector/order"),
        ("GET", "/version"),
        ("GET", "/config"),
        ("GET", "/stop"),
        ("GET", "/cancel"),
        ("GET", "/reset"),
        ("GET", "/tlc"),
        ("GET", "/check"),
        ("GET", "/openapi.json"),
        ("GET", "/no-such-route"),  # no route discovery without credentials
    ]:
        status, body, _ = await api.request(method, path, auth=None)
        assert status == 401, (method, path)
        assert_error(body, 401, "UNAUTHORIZED")
    assert api.stop_calls == 0
    assert api.tpm.received == []


async def test_healthcheck_is_open_and_reveals_only_health(api: Api) -> None:
    status, body, headers = await api.get("/v1/connector/healthcheck", auth=None)
    assert status == 200
    assert body == {"status": "OK"}
    assert "Server" not in headers or "ecr" not in headers["Server"].lower()
    assert api.tpm.received == []


async def test_unknown_route_and_method_are_json(api: Api) -> None:
    status, body, _ = await api.get("/nope")
    assert_error(body, 404, "NOT_FOUND")
    assert status == 404
    status, body, _ = await api.request("DELETE", "/")
    assert status == 405
    assert_error(body, 405, "METHOD_NOT_ALLOWED")


# --- CORS


async def test_no_origin_allowed_by_default(api: Api) -> None:
    status, body, headers = await api.request(
        "OPTIONS",
        "/",
        auth=None,
        headers={"Origin": "http://kiosk.local", "Access-Control-Request-Method": "POST"},
    )
    assert status == 403
    assert_error(body, 403, "ORIGIN_NOT_ALLOWED")
    assert "Access-Control-Allow-Origin" not in headers
    # a request carrying a foreign Origin is refused even with the right credentials
    status, body, _ = await api.post(
        "/", desktop_example_request(), headers={"Origin": "http://evil.example"}
    )
    assert status == 403
    assert api.tpm.received == []


async def test_configured_origin_preflight_and_request(tpm: RecordingTpManager) -> None:
    origin = "http://localhost:3000"
    async with serve_api(tpm, cors_origins=(origin,)) as api:
        status, _, headers = await api.request(
            "OPTIONS",
            "/",
            auth=None,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert "Authorization" in headers["Access-Control-Allow-Headers"]
        assert "Origin" in headers["Vary"]
        status, _, headers = await api.get("/version", headers={"Origin": origin})
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == origin
        # errors carry the CORS headers too, so the page can read them
        status, _, headers = await api.get("/version", auth=None, headers={"Origin": origin})
        assert status == 401
        assert headers["Access-Control-Allow-Origin"] == origin
        status, _, headers = await api.get("/version", headers={"Origin": "http://other:3000"})
        assert status == 403
        assert "Access-Control-Allow-Origin" not in headers
    assert tpm.received == []


# --- bodies


async def test_wrong_content_type_is_415(api: Api) -> None:
    status, body, _ = await api.post(
        "/", raw=b"amount=10", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 415
    err = assert_error(body, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert err["details"]["path"] == "Content-Type"
    status, body, _ = await api.post(
        "/", raw=b'{"amount": 1}', headers={"Content-Type": "text/plain"}
    )
    assert status == 415
    assert api.tpm.received == []


async def test_pos_order_takes_any_application_media_type(api: Api) -> None:
    """The POS API seed's postOrder body is ``application/*``: a client that labels its
    JSON ``application/octet-stream`` (or sends no Content-Type, which reads as that) is
    paid; a non-application type is still 415, naming the header."""
    for i, media in enumerate(("application/octet-stream", "application/x-www-form-urlencoded")):
        order = pos_example_request()
        order["order"]["order_id"] = f"MEDIA-{i}"
        status, body, _ = await api.post(
            "/v1/connector/order", raw=dumps(order).encode(), headers={"Content-Type": media}
        )
        assert status == 200, body
        assert body["order"]["order_id"] == f"MEDIA-{i}"
    order = pos_example_request()
    order["order"]["order_id"] = "MEDIA-none"
    async with api.session.post(
        api.base_url + "/v1/connector/order",
        data=dumps(order).encode(),
        headers={"Authorization": basic()},
        skip_auto_headers=["Content-Type"],
    ) as resp:
        assert "Content-Type" not in resp.request_info.headers
        assert resp.status == 200, await resp.text()
    assert len([r for r in api.tpm.received if r.command == "pay"]) == 3
    status, body, _ = await api.post(
        "/v1/connector/order",
        raw=dumps(pos_example_request()).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415
    err = assert_error(body, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert (err["details"]["path"], err["details"]["rule"]) == ("Content-Type", "media_type")
    assert len(api.tpm.received) == 3


async def test_body_over_64k_is_413(api: Api) -> None:
    big = {"amount": "1.00", "custom_data": {"pad": "x" * MAX_BODY_BYTES}}
    status, body, _ = await api.post("/", big)
    assert status == 413
    assert_error(body, 413, "BODY_TOO_LARGE")

    async def chunks():  # no Content-Length: the limit holds while reading
        yield b'{"amount": "1.00", "custom_data": {"pad": "'
        for _ in range(MAX_BODY_BYTES // 4096 + 1):
            yield b"x" * 4096
        yield b'"}}'

    async with api.session.post(
        api.base_url + "/",
        data=chunks(),
        headers={"Authorization": basic(), "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "BODY_TOO_LARGE"
    assert api.tpm.received == []


async def test_body_at_64k_is_read(api: Api) -> None:
    prefix = '{"amount": "1.00", "custom_data": {"pad": "'
    suffix = '"}}'
    text = prefix + "x" * (MAX_BODY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(text.encode()) == MAX_BODY_BYTES
    status, body, _ = await api.post("/", text)
    assert status == 200, body
    assert body["paymentStatus"] == "SUCCESS"


async def test_bad_json_is_400(api: Api) -> None:
    for raw, rule in [
        (b"{not json", "json"),
        (b"", "json"),
        (b"[1, 2]", "object"),
        (b'"text"', "object"),
        (b'{"amount": NaN}', "json"),
        (b'{"amount": Infinity}', "json"),
        (b"\xff\xfe{}", "encoding"),
    ]:
        status, body, _ = await api.post("/", raw=raw, headers={"Content-Type": "application/json"})
        assert status == 400, raw
        err = assert_error(body, 400, "INVALID_JSON")
        assert err["details"]["rule"] == rule, raw
    assert api.tpm.received == []


PAN = "4970101234561235"  # Luhn-valid, as every real card number
PAN_MASKED = "497010######1235"


async def test_an_error_never_quotes_a_card_number_back(api: Api) -> None:
    """A register that puts a card number where it does not belong gets its error with
    the number masked (common/redact.py): the error body lands in the register's own
    logs, a proxy's, a developer's console."""
    json_type = {"Content-Type": "application/json"}
    answers = [
        await api.post("/", {"amount": 1, "order_id": PAN}),  # refused: reads as a card
        await api.post(
            "/", {"amount": 1, "note": f"card {PAN[:4]} {PAN[4:8]} {PAN[8:12]} {PAN[12:]}"}
        ),  # an unknown field, spaced number
        await api.post("/", {"amount": int(PAN)}),  # as a JSON number
        await api.post("/", raw=b"{}", headers={"Content-Type": f"text/x-{PAN}"}),
        await api.post("/", raw=f'{{"order_id": "{PAN}",}}'.encode(), headers=json_type),
        await api.get(f"/transactions/{PAN}"),
        await api.get(f"/openapi.json?flavour={PAN}"),
    ]
    for status, body, _ in answers:
        assert 400 <= status < 500, body
        text = dumps(body)
        spaced = text.replace(" ", "").replace("-", "")
        assert PAN not in spaced, text
        assert PAN[6:12] not in text, text  # not even the middle digits
    quoted = [dumps(body) for _, body, _ in answers]
    assert PAN_MASKED in quoted[0] and PAN_MASKED in quoted[5], quoted
    assert api.tpm.received == []


async def test_server_binds_loopback_by_default() -> None:
    from supervisor_agent.api.settings import DEFAULT_BIND_ADDRESS, api_settings

    assert DEFAULT_BIND_ADDRESS == "127.0.0.1"
    s = api_settings(type("C", (), {"api_username": "u", "api_password": "p"})())
    assert s.bind_address == "127.0.0.1"


async def test_client_disconnect_does_not_cancel_payment(tpm: RecordingTpManager) -> None:
    """A register that hangs up mid-payment must not abort the customer's payment."""
    release = asyncio.Event()
    finished = asyncio.Event()

    async def slow_pay(request):
        await asyncio.wait_for(release.wait(), 5)
        from tests.api.conftest import default_responder

        reply = await default_responder(request)
        finished.set()
        return reply

    tpm.responders["pay"] = slow_pay
    async with serve_api(tpm) as api:
        short = aiohttp.ClientTimeout(total=0.3)
        try:
            async with api.session.post(
                api.base_url + "/",
                json={"amount": "1.00"},
                headers={"Authorization": basic()},
                timeout=short,
            ):
                pass
        except TimeoutError:
            pass
        assert tpm.commands() == ["pay"]
        release.set()
        await asyncio.wait_for(finished.wait(), 5)
        # the service is free again once the first payment has finished
        for _ in range(50):
            status, body, _ = await api.post("/", {"amount": "2.00"})
            if status == 200:
                break
            await asyncio.sleep(0.05)
        assert status == 200 and body["paymentStatus"] == "SUCCESS"
