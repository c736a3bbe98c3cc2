"""The serial-port list of the setup: what pyserial sees, the likely terminal marked first."""

from __future__ import annotations

from serial.tools import list_ports

from common.setup.serial_ports import (
    Likelihood,
    SerialPort,
    detected_ports,
    likelihood,
    suggested,
)


def test_every_port_pyserial_sees_is_listed() -> None:
    assert sorted(p.device for p in detected_ports()) == sorted(
        p.device for p in list_ports.comports()
    )


def test_payment_terminal_makers_are_marked_before_adapters_and_the_rest() -> None:
    assert likelihood(0x0B00) is Likelihood.TERMINAL  # Ingenico
    assert likelihood(0x11CA) is Likelihood.TERMINAL  # Verifone
    assert likelihood(0x0403) is Likelihood.ADAPTER  # FTDI
    assert likelihood(None) is Likelihood.OTHER
    ports = [
        SerialPort("/dev/ttyS0", "n/a", None, Likelihood.OTHER),
        SerialPort("/dev/ttyUSB0", "FT232R", 0x0403, Likelihood.ADAPTER),
        SerialPort("/dev/ttyACM0", "Desk/5000", 0x0B00, Likelihood.TERMINAL),
    ]
    assert suggested(ports) == "/dev/ttyACM0"
    assert "likely the terminal (Ingenico)" in ports[2].label()
    assert suggested(ports[:2]) == "/dev/ttyUSB0"
    assert suggested(ports[:1]) is None
