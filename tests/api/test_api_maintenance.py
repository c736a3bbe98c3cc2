"""Maintenance routes in both flavours: desktop objects, kiosk one-element arrays."""

from __future__ import annotations

import asyncio
from typing import Any

from common.messages import Reply, Request
from tests.api.conftest import RecordingTpManager, serve_api

SLOW_TERMINAL_S = 0.8  # longer than the maintenance timeout the test sets


async def test_version_and_config(tpm: RecordingTpManager) -> None:
    async with serve_api(tpm) as desktop, serve_api(tpm, api_flavour="kiosk") as kiosk:
        assert (await desktop.get("/version"))[:2] == (200, {"version": "0.1.0-concertv2-linux"})
        assert (await kiosk.get("/version"))[:2] == (
            200,
            [{"version": "0.1.0-concertv2-linux", "type": "concertv2", "os": "linux"}],
        )
        assert (await desktop.get("/config"))[:2] == (200, {"deviceId": "SN-TEST-0001"})
        status, body, _ = await kiosk.get("/config")
        assert status == 200
        assert body == [
            {
                "version": "0.1.0-concertv2-linux",
                "type": "concertv2",
                "os": "linux",
                "deviceId": "SN-TEST-0001",
            }
        ]
    assert tpm.received == []


async def test_stop_reports_what_supervisord_did(tpm: RecordingTpManager) -> None:
    async with serve_api(tpm) as api, serve_api(tpm, api_flavour="kiosk") as kiosk:
        assert (await api.get("/stop"))[:2] == (
            200,
            {"message": "TP-Manager stopped", "stopped": True},
        )
        api.stop_result = False
        assert (await api.get("/stop"))[1] == {
            "message": "TP-Manager was not stopped",
            "stopped": False,
        }
        api.stop_result = ConnectionRefusedError("supervisord socket refused")
        status, body, _ = await api.get("/stop")
        assert status == 200
        assert body["stopped"] is False
        assert "supervisord socket refused" in body["message"]
        assert api.stop_calls == 3
        status, body, _ = await kiosk.get("/stop")
        assert body == [{"message": "TP-Manager stopped", "stopped": True}]


async def test_check_maps_tp_manager_status(tpm: RecordingTpManager) -> None:
    async with serve_api(tpm) as api, serve_api(tpm, api_flavour="kiosk") as kiosk:
        status, body, _ = await api.get("/check")
        assert status == 200
        assert body == {
            "cr": "0",
            "card": None,
            "call": None,
            "periph": "0",
            "protocol": "concert-v2",
            "link": "up",
            "busy": False,
            "responding": True,
            "detail": "",
        }

        async def down(request):
            return Reply.success(
                request.id,
                {
                    "protocol": "concert-v2",
                    "link": "down",
                    "busy": False,
                    "responding": None,
                    "detail": "no such port",
                },
            )

        tpm.responders["check"] = down
        status, body, _ = await kiosk.get("/check")
        assert status == 200
        assert body[0]["cr"] == "1" and body[0]["periph"] == "1"
        assert body[0]["detail"] == "no such port"
    assert tpm.commands() == ["check", "check"]


async def test_reset_and_tlc_not_supported_is_501(tpm: RecordingTpManager) -> None:
    async with serve_api(tpm) as api, serve_api(tpm, api_flavour="kiosk") as kiosk:
        for client in (api, kiosk):
            for path in ("/reset", "/tlc"):
                status, body, _ = await client.get(path)
                assert status == 501
                assert body["error"]["code"] == "NOT_SUPPORTED"
                assert "concert-v2" in body["error"]["message"]
    assert tpm.commands() == ["reset", "telecollect"] * 2


async def test_reset_and_tlc_when_supported(tpm: RecordingTpManager) -> None:
    async def reset(request):
        return Reply.success(request.id, {"done": True, "detail": "rebooting"})

    async def tlc(request):
        return Reply.success(
            request.id, {"done": True, "detail": "", "apps": [{"name": "CB EMV", "status": "0"}]}
        )

    tpm.responders.update(reset=reset, telecollect=tlc)
    async with serve_api(tpm, api_flavour="kiosk") as kiosk:
        assert (await kiosk.get("/reset"))[1] == [{"done": True, "detail": "rebooting"}]
        assert (await kiosk.get("/tlc"))[1] == [
            {"NbApp": "1", "App": [{"Name": "CB EMV", "Status": "0"}], "done": True, "detail": ""}
        ]


async def test_cancel_with_nothing_in_flight(tpm: RecordingTpManager) -> None:
    async with serve_api(tpm, api_flavour="kiosk") as kiosk:
        status, body, _ = await kiosk.get("/cancel")
    assert status == 200
    assert body == [
        {
            "message": "no transaction in flight",
            "cancelled": False,
            "orderId": None,
            "terminalMayStillComplete": False,
        }
    ]
    assert tpm.commands() == ["cancel"]


async def test_tlc_and_reset_wait_for_the_terminal_not_the_maintenance_timeout(
    tpm: RecordingTpManager,
) -> None:
    """A remote collection dials the bank: it takes longer than a check.  tp-manager bounds
    it by the transaction timeout; the API waits for that answer (the payment's budget)
    instead of answering 504 TP_MANAGER_TIMEOUT while the terminal is still collecting."""

    def slow(result: dict[str, Any]) -> Any:
        async def responder(request: Request) -> Reply:
            await asyncio.sleep(SLOW_TERMINAL_S)
            return Reply.success(request.id, result)

        return responder

    tpm.responders.update(
        telecollect=slow({"done": True, "detail": "AE=10", "apps": []}),
        reset=slow({"done": True, "detail": "the terminal is rebooting"}),
    )
    async with serve_api(
        tpm, maintenance_timeout_s=SLOW_TERMINAL_S / 4, payment_timeout_s=SLOW_TERMINAL_S * 20
    ) as api:
        status, tlc, _ = await api.get("/tlc")
        assert status == 200 and tlc["done"] is True, tlc
        status, reset, _ = await api.get("/reset")
        assert status == 200 and reset["done"] is True, reset
        tpm.responders["check"] = slow({"protocol": "concert-v3", "link": "up", "busy": False})
        status, check, _ = await api.get("/check")  # a check is a look: its own short bound
        assert status == 504 and check["error"]["code"] == "TP_MANAGER_TIMEOUT", check
        assert "paid" not in check["error"]["description"]  # no customer in a check
