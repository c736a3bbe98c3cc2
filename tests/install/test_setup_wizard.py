"""``ecr-connector setup`` driven through a real pseudo-terminal with the seeds' answers."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.config import load_config
from tests.install.conftest import CONNECTOR, pty_device
from tests.install.pty_session import PtySession

HIPAY_PASSWORD = "Test_qVpLbNOWemB7SCcnuqQoT3Yu"  # the desktop seed's transcript
API_PASSWORD = "pwd-Zq81xWv"


@pytest.fixture
def device() -> Iterator[str]:
    """A real serial device for the serial-port question: a pseudo-terminal."""
    with pty_device() as path:
        yield path


@pytest.fixture
def session(tmp_path: Path) -> Iterator[PtySession]:
    env = {k: v for k, v in os.environ.items() if k != "PROMPT_TOOLKIT_NO_CPR"}
    running = PtySession([str(CONNECTOR), "setup"], tmp_path, env)
    try:
        yield running
    finally:
        running.close()


def answer_up_to_contracts(session: PtySession, folder: Path, device: str) -> None:
    """The desktop seed's (Windows) transcript, with the Linux answers where it must differ."""
    session.expect("Installing HiPay ECR Connector...")
    session.answer("Enter your HiPay username", "12345678.stage-secure-gateway.hipay-tpp.com")
    session.answer("Enter your HiPay password", HIPAY_PASSWORD)
    session.answer("Select the installation folder.", str(folder))
    # the seed's COM14 is refused with the Linux advice; then the real device
    session.answer("Which serial port is connected to the payment terminal ?", "COM14")
    session.expect("serial_port: COM14 is a Windows port name")
    session.type("\x15" + device + "\r")  # Ctrl-U clears the refused answer
    session.answer("Enter the payment terminal serial number", "1234567890")
    session.answer("Select the local port for the API [8080]", "99999")
    session.expect("local_port: must be a TCP port number from 1 to 65535")
    session.type("\x15" + "8888\r")
    session.answer("local API username [register]", "log")
    session.answer("local API password", API_PASSWORD)
    session.answer("Running environment", "dev")
    session.answer("Authorization Threshold [100]", "100")
    session.answer("When to update the application [03:00]", "3h00")
    session.expect('update_time: must be a time written HH:MM (00:00 to 23:59), like "03:00"')
    session.type("\x15" + "03:00\r")
    session.expect("We will now enter your contracts details")


def test_setup_through_a_pty_with_both_contracts_writes_a_private_config(
    tmp_path: Path, session: PtySession, device: str
) -> None:
    folder = tmp_path / "connector"
    answer_up_to_contracts(session, folder, device)
    session.answer("What type of contract do you have ?", "both")
    session.answer("Enter your payment_application for proxy [001]", "001")
    session.answer("Enter your payment_application for NFC [00B]", "00B")
    session.answer("Enter your merchant ID for proxy", "1234567")
    session.answer("Enter your merchant ID for NFC", "1234568")
    session.answer("Enter the terminal rank for proxy [001]", "001")
    session.answer("Enter the terminal rank for NFC [001]", "")  # the default
    assert session.wait() == 0, session.screen[-3000:]

    path = folder / "config.yml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [p.name for p in folder.iterdir()] == ["config.yml"]  # no temporary file left
    config = load_config(path)
    assert config.hipay_login == "12345678.stage-secure-gateway.hipay-tpp.com"
    assert config.hipay_password is not None
    assert config.hipay_password.get_secret_value() == HIPAY_PASSWORD
    assert config.api_password.get_secret_value() == API_PASSWORD
    assert (config.serial_port, config.serial_number) == (device, "1234567890")
    assert (config.local_port, config.api_username, config.environment) == (8888, "log", "stage")
    assert str(config.authorization_threshold) == "100"
    assert str(config.update_time) == "03:00:00"
    assert [(c.name, c.payment_application, c.merchant_id, c.rank) for c in config.contracts] == [
        ("proxy", "001", "1234567", "001"),
        ("nfc", "00B", "1234568", "001"),
    ]
    assert config.data_dir == folder
    # the seed's line settings as a person writes them (docs/installation.md), no YAML tags
    text = path.read_text()
    assert "\nbaudRate: 9600\ndataBits: 8\nparity: none\nstopBits: 1\n" in text
    assert "!!" not in text

    # the passwords were never on the screen, not even in the summary
    for secret in (HIPAY_PASSWORD, API_PASSWORD):
        assert secret.encode() not in session.raw
    screen = session.screen
    assert "Installation completed with success !" in screen
    assert "hipay_password: '********'" in screen and "api_password: '********'" in screen
    assert f"Written to {path} (mode 0600, folder 0700)" in screen
    assert f"run --config {path}" in screen and f"doctor --config {path}" in screen
    assert f"*/2 * * * * ECR_CONFIG={path}" in screen and "always-up.sh" in screen


def test_setup_through_a_pty_with_the_proxy_contract_only(
    tmp_path: Path, session: PtySession, device: str
) -> None:
    folder = tmp_path / "connector"
    answer_up_to_contracts(session, folder, device)
    session.answer("What type of contract do you have ?", "proxy")
    session.answer("Enter your payment_application for proxy [001]", "")
    session.answer("Enter your merchant ID for proxy", "12345")
    session.expect("contract.proxy.merchant_id: must be the 7-character merchant contract number")
    session.type("\x15" + "1234567\r")
    session.answer("Enter the terminal rank for proxy [001]", "001")
    assert session.wait() == 0, session.screen[-3000:]
    assert "for NFC" not in session.screen
    config = load_config(folder / "config.yml")
    assert [(c.name, c.merchant_id) for c in config.contracts] == [("proxy", "1234567")]


def test_ctrl_c_during_setup_writes_nothing(
    tmp_path: Path, session: PtySession, device: str
) -> None:
    folder = tmp_path / "connector"
    answer_up_to_contracts(session, folder, device)
    session.expect("What type of contract do you have ?")
    session.type("\x03")
    assert session.wait() == 130
    assert "cancelled; nothing was written" in session.screen
    assert not (folder / "config.yml").exists()
