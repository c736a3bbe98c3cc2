"""Secrets and card numbers against the whole connector, as a user runs it: hostile
requests to the real API under real supervisord, then every byte the connector left in
its data directory (logs, err logs, journal, result store, run files), what ``run``
printed (systemd's journal under the unit) and the ``status`` command's output are
searched for them, and the files' modes are checked.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
from pathlib import Path

from supervisor_agent.api.examples import pos_example_request
from tests.stack import REPO, HipayStub, running_stack, wait_for

PROGRAMS = ["tp-manager", "supervisor-agent", "simulator"]
DELIVERY_TIMEOUT_S = 60.0
PAN = "4970101234561235"  # Luhn-valid, as every real card number
PAN_SPACED = "4970 1012 3456 1235"
API_PASSWORD = "api-Secret-Pw-42"


def raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """One request written byte for byte (a header no HTTP client library would send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_no_secret_and_no_card_number_is_left_anywhere(tmp_path: Path, hipay: HipayStub) -> None:
    with running_stack(
        tmp_path,
        api_password=API_PASSWORD,
        hipay_base_url=hipay.url + "/",
        hipay_login=hipay.login,
        hipay_password=hipay.password,
    ) as stack:
        stack.wait_running(PROGRAMS)
        port = int(stack.config["local_port"])
        user = stack.config["api_username"]
        wrong = base64.b64encode(f"{user}:{PAN}{API_PASSWORD[:-1]}".encode()).decode()
        for head in (
            # malformed credentials: a non-ASCII token, then the password in clear
            b"GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \xe9\xe9\r\n"
            b"Connection: close\r\n\r\n",
            f"GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {user}:{API_PASSWORD}"
            "\r\nConnection: close\r\n\r\n".encode(),
            f"GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {wrong}\r\n"
            "Connection: close\r\n\r\n".encode(),
            f"GET /transactions/{PAN}?card={PAN} HTTP/1.1\r\nHost: x\r\nX-Card: {PAN}\r\n"
            "Connection: close\r\n\r\n".encode(),
        ):
            answer = raw_request(port, head)
            assert answer.startswith(b"HTTP/1.1 401 "), answer
            assert b'"UNAUTHORIZED"' in answer and PAN.encode() not in answer
        for status, _ in (
            stack.request("GET", f"/transactions/{PAN}?card={PAN}"),
            stack.request("POST", "/", {"amount": "1.00", "order_id": PAN}),
            stack.request("POST", "/", {"amount": "1.00", "note": PAN_SPACED}),
        ):
            assert 400 <= status < 500
        token = base64.b64encode(f"{user}:{API_PASSWORD}".encode()).decode()
        body = f'{{"amount": "1.00", "order_id": "{PAN}" oops}}'.encode()
        answer = raw_request(
            port,
            f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode(),
            body,
        )
        assert answer.startswith(b"HTTP/1.1 400 ") and PAN.encode() not in answer, answer
        order = pos_example_request()
        order["order"]["order_id"] = "E2E-SECRETS-1"
        order["order"]["description"] = f"paid with {PAN}"
        order["order"]["custom_data"] = {"card": PAN_SPACED}
        status, paid = stack.request("POST", "/v1/connector/order", order)
        assert status == 200, paid
        wait_for(lambda: hipay.acknowledged("E2E-SECRETS-1"), DELIVERY_TIMEOUT_S, "HiPay")
        status_cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "common",
                "status",
                "--config",
                str(stack.config_path),
                "--json",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        assert "E2E-SECRETS-1" in status_cli.stdout, status_cli
    # stopped: every file is complete on disk
    data_dir = stack.data_dir
    files = [p for p in data_dir.rglob("*") if p.is_file() and "versions" not in p.parts]
    assert any(p.name == "supervisor-agent.log" for p in files), files
    leaks = []
    for path in files:
        text = path.read_bytes().decode("latin-1")
        spaced = text.replace(" ", "").replace("-", "")
        for secret in (PAN, API_PASSWORD, hipay.password):
            if secret in (spaced if secret == PAN else text):
                leaks.append((path.relative_to(data_dir), secret))
        if path.suffix in (".log", ".sqlite3") or ".log." in path.name:
            assert path.stat().st_mode & 0o077 == 0, path
    console = (tmp_path / "run.out").read_text(errors="replace")  # systemd's journal gets it
    for where, text in (("status", status_cli.stdout + status_cli.stderr), ("run", console)):
        for secret in (PAN, API_PASSWORD, hipay.password):
            if secret in text:
                leaks.append((where, secret))
    received = repr(hipay.received())
    assert PAN not in received.replace(" ", "")
    assert not leaks, leaks
