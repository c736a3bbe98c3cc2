"""The Concert V2 terminal simulator, driven through its real CLI and a real pty."""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

from .conftest import (
    ACK,
    ENQ,
    EOT,
    NAK,
    ROOT,
    STX,
    Line,
    LineDropped,
    StartSim,
    expect,
    frame,
    read_answer_frame,
    receive_answer,
    request_message,
    send_request,
    start_command,
)

SIMULATOR_DIR = ROOT / "tp_manager" / "simulator"
FORBIDDEN_PACKAGES = ("tp_manager.concert_v2", "tp_manager.concert_v3", "tp_manager.terminal")
FULL_PAN = re.compile(r"[0-9]{13,19}")
MASKED_CARD = re.compile(r"[0-9]{6}X{5,9}[0-9]{4}")


def split_full(answer: str) -> dict[str, str]:
    assert len(answer) == 80, (len(answer), answer)
    return {
        "pos": answer[0:2],
        "status": answer[2],
        "amount": answer[3:11],
        "mode": answer[11],
        "report": answer[12:67],
        "currency": answer[67:70],
        "private": answer[70:80],
    }


def split_short(answer: str) -> dict[str, str]:
    assert len(answer) == 25, (len(answer), answer)
    return {
        "pos": answer[0:2],
        "status": answer[2],
        "amount": answer[3:11],
        "mode": answer[11],
        "currency": answer[12:15],
        "private": answer[15:25],
    }


def pay(line: Line, amount: int, **fields: str) -> str:
    send_request(line, request_message(amount, **fields))
    return receive_answer(line)


# -- the normal exchange -------------------------------------------------------


def test_full_answer_echoes_request_and_masks_the_card(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    answer = pay(line, 1234, pos="42", mode="1", currency="978", private="ORDER-0042")
    fields = split_full(answer)
    assert fields["pos"] == "42"
    assert fields["status"] == "0"
    assert fields["amount"] == "00001234"
    assert fields["mode"] == "1"
    assert fields["currency"] == "978"
    assert fields["private"] == "ORDER-0042"
    report = fields["report"]
    assert report.startswith("497010XXXXXX1234")
    assert MASKED_CARD.search(report)
    assert not FULL_PAN.search(report)
    assert sim.logged('"simulator.concert_v2.answer"')
    assert not FULL_PAN.search(sim.log())


def test_short_answer_is_25_characters(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    send_request(line, request_message(999, answer_flag="0", currency="840", private="ABCDEFGHIJ"))
    expect(line, ENQ)
    line.write(bytes([ACK]))
    message, lrc_ok = read_answer_frame(line)
    assert lrc_ok
    assert len(message) + 3 == 28  # STX + 25 + ETX + LRC
    fields = split_short(message.decode())
    assert fields == {
        "pos": "01",
        "status": "0",
        "amount": "00000999",
        "mode": "1",
        "currency": "840",
        "private": "ABCDEFGHIJ",
    }
    line.write(bytes([ACK]))
    expect(line, EOT)


def test_two_payments_in_a_row_on_the_same_line(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    first = split_full(pay(line, 100, private="FIRST     "))
    second = split_full(pay(line, 200, private="SECOND    "))
    assert (first["amount"], first["private"]) == ("00000100", "FIRST     ")
    assert (second["amount"], second["private"]) == ("00000200", "SECOND    ")


def test_unknown_currency_is_answered_not_verified(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    fields = split_full(pay(line, 500, currency="000"))
    assert fields["status"] == "9"
    assert fields["currency"] == "000"
    assert fields["report"] == " " * 55


def test_delay_a011_answers_without_the_customer_pause(start_sim: StartSim) -> None:
    sim = start_sim("--pay-seconds", "30", fast=False)
    line = sim.open_line()
    send_request(line, request_message(700, delay="A011"))
    # A010 would wait 30 s; A011 answers at once.
    assert split_full(receive_answer(line, timeout=10))["status"] == "0"


# -- the link layer ------------------------------------------------------------


def test_probe_is_acked_and_ignored(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    line.write(bytes([ENQ]))
    expect(line, ACK)
    line.write(bytes([EOT]))
    assert line.silence(0.5) == b""
    assert split_full(pay(line, 300))["status"] == "0"
    assert sim.logged('"simulator.concert_v2.probe"')


def test_bad_lrc_from_register_is_naked_then_resend_acked(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    message = request_message(450)
    line.write(bytes([ENQ]))
    expect(line, ACK)
    line.write(frame(message, lrc_delta=0x01))
    expect(line, NAK)
    line.write(frame(message))
    expect(line, ACK)
    line.write(bytes([EOT]))
    assert split_full(receive_answer(line))["amount"] == "00000450"


@pytest.mark.parametrize(
    "message",
    [
        request_message(100)[:-1],  # 33 characters
        b"01" + b"0000ABCD" + request_message(100)[10:],  # letters in the amount
        request_message(100, delay="A099"),
        request_message(100, authorization="B999"),
        request_message(100, ttype="7"),
        request_message(100, pos="00"),
    ],
    ids=["short", "amount-letters", "bad-delay", "bad-authorization", "bad-type", "pos-00"],
)
def test_malformed_request_is_naked(start_sim: StartSim, message: bytes) -> None:
    sim = start_sim()
    line = sim.open_line()
    line.write(bytes([ENQ]))
    expect(line, ACK)
    line.write(frame(message))
    expect(line, NAK)
    line.write(frame(message))
    expect(line, NAK)
    line.write(bytes([EOT]))  # the register gives up
    assert line.silence(0.4) == b""
    assert split_full(pay(line, 100))["status"] == "0"  # back to idle
    assert sim.logged('"simulator.concert_v2.malformed_request"')


def test_answer_enq_is_repeated_until_acked(start_sim: StartSim) -> None:
    sim = start_sim("--link-timeout", "0.4")
    line = sim.open_line()
    send_request(line, request_message(610))
    expect(line, ENQ)  # not answered
    expect(line, ENQ, timeout=2)  # the terminal tries again
    line.write(bytes([ACK]))
    message, lrc_ok = read_answer_frame(line)
    assert lrc_ok
    line.write(bytes([ACK]))
    expect(line, EOT)
    assert split_full(message.decode())["amount"] == "00000610"


def test_answer_resends_are_bounded(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    send_request(line, request_message(620))
    expect(line, ENQ)
    line.write(bytes([ACK]))
    for _ in range(3):
        _, lrc_ok = read_answer_frame(line)
        assert lrc_ok
        line.write(bytes([NAK]))
    expect(line, EOT)  # after three sends the terminal gives up
    assert line.silence(0.4) == b""


# -- scenarios chosen with --scenario -----------------------------------------


@pytest.mark.parametrize(
    ("scenario", "status"),
    [
        ("approve", "0"),
        ("refuse", "7"),
        ("not-verified", "9"),
        ("abandon", "9"),
        ("terminal-timeout", "9"),
        ("format-error", "9"),
    ],
)
def test_scenario_status(start_sim: StartSim, scenario: str, status: str) -> None:
    sim = start_sim("--scenario", scenario)
    line = sim.open_line()
    fields = split_full(pay(line, 1500))
    assert fields["status"] == status
    assert fields["amount"] == "00001500"
    if status == "9":
        assert fields["report"] == " " * 55
    else:
        assert MASKED_CARD.match(fields["report"])
        assert not FULL_PAN.search(fields["report"])
    assert sim.logged_field("status", status)


def test_customer_slow_answers_after_slow_seconds(start_sim: StartSim) -> None:
    sim = start_sim("--scenario", "customer-slow", "--slow-seconds", "1.2")
    line = sim.open_line()
    send_request(line, request_message(800))
    assert line.silence(0.8) == b""
    assert split_full(receive_answer(line, timeout=5))["status"] == "0"


def test_never_answer_then_next_request_is_served(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    send_request(line, request_message(100004))  # 1000.04: never-answer
    assert line.silence(1.0) == b""
    assert split_full(pay(line, 100))["status"] == "0"
    assert sim.logged('"simulator.concert_v2.never_answer"')


def test_nak_first_then_ack_on_resend(start_sim: StartSim) -> None:
    sim = start_sim("--scenario", "nak-first")
    line = sim.open_line()
    message = request_message(900)
    line.write(bytes([ENQ]))
    expect(line, ACK)
    line.write(frame(message))
    expect(line, NAK)
    line.write(frame(message))
    expect(line, ACK)
    line.write(bytes([EOT]))
    assert split_full(receive_answer(line))["status"] == "0"


def test_bad_lrc_once_then_correct_resend(start_sim: StartSim) -> None:
    sim = start_sim("--scenario", "bad-lrc-once")
    line = sim.open_line()
    send_request(line, request_message(910))
    expect(line, ENQ)
    line.write(bytes([ACK]))
    first, first_ok = read_answer_frame(line)
    assert not first_ok
    line.write(bytes([NAK]))
    second, second_ok = read_answer_frame(line)
    assert second_ok
    assert second == first
    line.write(bytes([ACK]))
    expect(line, EOT)


def test_garbage_before_the_answer_enq(start_sim: StartSim) -> None:
    sim = start_sim("--scenario", "garbage")
    line = sim.open_line()
    send_request(line, request_message(920))
    before = line.read_until(ENQ)[:-1]
    assert len(before) >= 3
    assert not set(before) & {STX, ENQ, ACK, NAK, EOT}
    line.write(bytes([ACK]))
    message, lrc_ok = read_answer_frame(line)
    assert lrc_ok
    line.write(bytes([ACK]))
    expect(line, EOT)
    assert split_full(message.decode())["status"] == "0"


def test_split_answer_arrives_in_two_parts(start_sim: StartSim) -> None:
    sim = start_sim("--scenario", "split")
    line = sim.open_line()
    send_request(line, request_message(930))
    expect(line, ENQ)
    line.write(bytes([ACK]))
    first = line.read(1)
    started = time.monotonic()
    rest = line.read(82, timeout=5)
    elapsed = time.monotonic() - started
    data = first + rest
    assert len(data) == 83 and data[0] == STX
    assert elapsed >= 0.4  # the simulator pauses 0.5 s between its two writes
    line.write(bytes([ACK]))
    expect(line, EOT)


def test_drop_link_closes_the_pty_and_announces_a_new_one(start_sim: StartSim) -> None:
    sim = start_sim("--scenario", "drop-link")
    first_pty = os.path.realpath(sim.pty_path)
    line = sim.open_line()
    send_request(line, request_message(940))
    with pytest.raises(LineDropped):
        line.read(1, timeout=3)
    where = sim.read_ready(timeout=5)
    assert where.startswith("pty=")
    # a new pty (we still hold the old one open); the announced path may be the same
    # one, as a replugged device keeps its name, and now leads to the new pty
    assert os.path.realpath(sim.pty_path) != first_pty
    new_line = sim.open_line()
    assert new_line.fd != line.fd
    # still drop-link for every amount below 1000.00: 1000.00 approves
    assert split_full(pay(new_line, 100000))["status"] == "0"


# -- scenarios chosen by magic amounts ------------------------------------------


@pytest.mark.parametrize(
    ("amount", "status"),
    [(100000, "0"), (100001, "7"), (100002, "9"), (100009, "9"), (100010, "9"), (100011, "9")],
)
def test_magic_amounts_override_default(start_sim: StartSim, amount: int, status: str) -> None:
    sim = start_sim("--scenario", "refuse" if status == "0" else "approve")
    line = sim.open_line()
    assert split_full(pay(line, amount))["status"] == status


def test_magic_nak_first_amount(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    message = request_message(100005)
    line.write(bytes([ENQ]))
    expect(line, ACK)
    line.write(frame(message))
    expect(line, NAK)
    line.write(frame(message))
    expect(line, ACK)
    line.write(bytes([EOT]))
    assert split_full(receive_answer(line))["amount"] == "00100005"


def test_below_threshold_follows_scenario_option(start_sim: StartSim) -> None:
    sim = start_sim("--scenario", "refuse")
    line = sim.open_line()
    assert split_full(pay(line, 99901))["status"] == "7"  # 999.01: not magic


# -- pacing, devices, process life ------------------------------------------------


def test_pace_sends_bytes_at_the_baud_rate(start_sim: StartSim) -> None:
    sim = start_sim("--pace", "--baudrate", "2400")
    line = sim.open_line()
    send_request(line, request_message(111))
    expect(line, ENQ)
    line.write(bytes([ACK]))
    first = line.read(1)
    assert first == bytes([STX])
    started = time.monotonic()
    rest = line.read(82, timeout=5)
    elapsed = time.monotonic() - started
    assert len(rest) == 82
    # 82 more bytes at 10 bits each and 2400 baud: 0.34 s at least
    assert elapsed >= 82 * 10 / 2400 * 0.9
    line.write(bytes([ACK]))
    expect(line, EOT)


def test_bits_per_byte_follow_the_line_settings() -> None:
    from tp_manager.simulator.byte_link import LineSettings

    assert LineSettings().bits_per_byte == 10
    assert LineSettings(bytesize=7, parity="E").bits_per_byte == 10
    assert LineSettings(bytesize=8, parity="E").bits_per_byte == 11
    assert LineSettings(bytesize=8, parity="N", stopbits=2).bits_per_byte == 11
    assert LineSettings(baudrate=9600).byte_seconds == pytest.approx(10 / 9600)


def test_device_mode_serves_an_existing_serial_line(start_sim: StartSim) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    device = os.ttyname(slave)
    line = Line(master)
    try:
        os.set_blocking(master, False)
        sim = start_sim(
            "--device",
            device,
            "--bytesize",
            "7",
            "--parity",
            "E",
            base=("--protocol", "concert-v2"),
        )
        assert sim.where == f"device={device}"
        fields = split_full(pay(line, 2500, private="DEVICE-001"))
        assert (fields["status"], fields["private"]) == ("0", "DEVICE-001")
    finally:
        line.close()
        os.close(slave)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero(start_sim: StartSim, signum: int) -> None:
    sim = start_sim()
    started = time.monotonic()
    assert sim.stop(signum) == 0
    assert time.monotonic() - started < 5


def test_sigterm_mid_transaction_exits_zero(start_sim: StartSim) -> None:
    sim = start_sim("--scenario", "customer-slow", "--slow-seconds", "30")
    line = sim.open_line()
    send_request(line, request_message(100))
    assert sim.stop() == 0
    assert sim.proc.stdout is not None
    assert sim.proc.stdout.read() == b""  # nothing but the READY line on stdout


def test_stdout_has_only_the_ready_line(start_sim: StartSim) -> None:
    sim = start_sim()
    line = sim.open_line()
    pay(line, 100)
    assert sim.stop() == 0
    assert sim.proc.stdout is not None
    assert sim.proc.stdout.read() == b""
    assert sim.logged("simulator.concert_v2.request")


@pytest.mark.parametrize(
    "args",
    [
        ["--protocol", "concert-v2"],
        ["--protocol", "concert-v3"],
        ["--protocol", "concert-v2", "--pty", "--scenario", "no-such"],
        ["--protocol", "concert-v3", "--listen", "nohostport"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = subprocess.run(
        start_command(*args), cwd=ROOT, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == b""


def test_missing_device_exits_1(tmp_path: Path) -> None:
    done = subprocess.run(
        start_command("--protocol", "concert-v2", "--device", str(tmp_path / "no-tty")),
        cwd=ROOT,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == b""


def test_concert_v3_dispatch_prints_tcp_ready(start_sim: StartSim) -> None:
    pytest.importorskip("tp_manager.simulator.concert_v3")
    sim = start_sim("--protocol", "concert-v3", "--listen", "127.0.0.1:0", base=(), fast=False)
    host, _, port = sim.where.removeprefix("tcp=").rpartition(":")
    assert sim.where.startswith("tcp=") and host == "127.0.0.1" and int(port) > 0
    with socket.create_connection((host, int(port)), timeout=5):
        pass
    assert sim.stop() == 0


# -- independence from the driver ----------------------------------------------------


def test_simulator_sources_do_not_import_the_drivers() -> None:
    offenders = []
    for path in sorted(SIMULATOR_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {name}" for name in names if name.startswith(FORBIDDEN_PACKAGES)
            ]
    assert offenders == []


def test_simulator_runtime_does_not_load_the_drivers() -> None:
    code = (
        "import sys, argparse\n"
        "import tp_manager.simulator.cli as cli\n"
        "import tp_manager.simulator.concert_v2, tp_manager.simulator.link_openers\n"
        "import tp_manager.simulator.log_setup\n"
        "cli.configure(argparse.ArgumentParser())\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('tp_manager'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=30, check=True
    )
    loaded = done.stdout.decode().split()
    assert "tp_manager.simulator.concert_v2" in loaded
    assert not [name for name in loaded if name.startswith(FORBIDDEN_PACKAGES)]


def test_a_stopped_simulators_path_never_leads_to_the_next_one(start_sim: StartSim) -> None:
    """The flaky refusal test's race: a register left reconnecting to a stopped simulator's
    line opened the next simulator's pty (the kernel reuses a freed /dev/pts number at
    once) and took half its bytes.  The announced path lives only with its simulator."""
    first = start_sim()
    old_path = first.pty_path
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = start_sim()
    with pytest.raises(FileNotFoundError):
        os.open(old_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    line = second.open_line()
    send_request(line, request_message(999))
    assert receive_answer(line).startswith("010")
