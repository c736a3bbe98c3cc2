"""The desktop seed installer's questions, in its order, each with the loader's rule.

Every answer is checked as it is typed by the same rule function the config
loader applies to the key (common/config/rules.py), so the wizard cannot write
a file the connector then refuses.  ``install_dir`` and ``contract_type`` are
the two answers that are not config keys: where the file goes, and which
contract blocks follow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from common.config import rules
from common.config.loader import DEFAULT_LOCAL_PORT, socket_room_problem

INSTALL_DIR = "install_dir"
CONTRACT_TYPE = "contract_type"
DEFAULT_INSTALL_DIR = "~/ecr-connector"
CONTRACTS_INTRO = "We will now enter your contracts details"


class ContractType(StrEnum):
    PROXY = "proxy"  # contact
    NFC = "nfc"  # contactless
    BOTH = "both"


def contract_type(value: Any) -> ContractType:
    text = rules.required_text(value).lower()
    try:
        return ContractType(text)
    except ValueError:
        raise ValueError("must be proxy (contact), nfc (contactless) or both") from None


def install_dir(value: Any) -> Path:
    """An absolute folder (``~`` expanded) whose run/ sockets fit a unix socket path."""
    folder = rules.path(os.path.expanduser(rules.required_text(value)))
    problem = socket_room_problem(folder.absolute())
    if problem:
        raise ValueError(problem.replace("data_dir", "installation folder"))
    return folder


def serial_port(value: Any) -> str | None:
    """The loader's rule, and the device must be there now (``simulator`` and URLs aside)."""
    port = rules.serial_port(rules.required_text(value))
    if port and port != rules.SIMULATOR and "://" not in port and not os.path.exists(port):
        raise ValueError(
            f"{port} is not there: plug the terminal in and compare `ls /dev` before and "
            "after (usually /dev/ttyUSB0 or /dev/ttyACM0); the connector's user must be in "
            "the dialout group (sudo usermod -a -G dialout USER, then log in again)"
        )
    return port


def _contract(name: str) -> Callable[[Mapping[str, str]], bool]:
    def applies(answers: Mapping[str, str]) -> bool:
        chosen = answers.get(CONTRACT_TYPE, "")
        return chosen in (name, ContractType.BOTH)

    return applies


def _always(_answers: Mapping[str, str]) -> bool:
    return True


def _environment_default(answers: Mapping[str, str]) -> str:
    return rules.infer_environment(answers.get("hipay_login"))


@dataclass(frozen=True, slots=True)
class Question:
    key: str  # the config key (dotted for a contract field), or INSTALL_DIR / CONTRACT_TYPE
    text: str  # the seed installer's wording
    rule: Callable[[Any], Any]
    default: str | Callable[[Mapping[str, str]], str] | None = None
    secret: bool = False
    optional: bool = False  # an empty answer leaves the key out
    applies: Callable[[Mapping[str, str]], bool] = _always

    def default_for(self, answers: Mapping[str, str]) -> str | None:
        return self.default(answers) if callable(self.default) else self.default

    def problem(self, answer: str) -> str | None:
        """The rule ``answer`` breaks, worded with the key; None when it is fine."""
        if not answer and self.optional:
            return None
        try:
            self.rule(answer)
        except ValueError as exc:
            return f"{self.key}: {exc}"
        return None


QUESTIONS: tuple[Question, ...] = (
    Question("hipay_login", "Enter your HiPay username", rules.required_text),
    Question("hipay_password", "Enter your HiPay password", rules.secret_text, secret=True),
    Question(INSTALL_DIR, "Select the installation folder.", install_dir, DEFAULT_INSTALL_DIR),
    Question(
        "serial_port", "Which serial port is connected to the payment terminal ?", serial_port
    ),
    Question(
        "serial_number",
        "Enter the payment terminal serial number",
        rules.optional_text,
        optional=True,
    ),
    Question(
        "local_port", "Select the local port for the API", rules.port, str(DEFAULT_LOCAL_PORT)
    ),
    Question("api_username", "local API username", rules.api_username, "register"),
    Question("api_password", "local API password", rules.secret_text, secret=True),
    Question(
        "environment",
        "Running environment (stage, production; dev and prod say the same)",
        rules.environment,
        _environment_default,
    ),
    Question("authorization_threshold", "Authorization Threshold", rules.threshold, "100"),
    Question("update_time", "When to update the application", rules.hhmm, "03:00"),
    Question(
        CONTRACT_TYPE,
        "What type of contract do you have ? (proxy, nfc, both)",
        contract_type,
        ContractType.BOTH.value,
    ),
    Question(
        "contract.proxy.payment_application",
        "Enter your payment_application for proxy",
        rules.payment_application,
        "001",
        applies=_contract("proxy"),
    ),
    Question(
        "contract.nfc.payment_application",
        "Enter your payment_application for NFC",
        rules.payment_application,
        "00B",
        applies=_contract("nfc"),
    ),
    Question(
        "contract.proxy.merchant_id",
        "Enter your merchant ID for proxy",
        rules.merchant_id,
        applies=_contract("proxy"),
    ),
    Question(
        "contract.nfc.merchant_id",
        "Enter your merchant ID for NFC",
        rules.merchant_id,
        applies=_contract("nfc"),
    ),
    Question(
        "contract.proxy.rank",
        "Enter the terminal rank for proxy",
        rules.rank,
        "001",
        applies=_contract("proxy"),
    ),
    Question(
        "contract.nfc.rank",
        "Enter the terminal rank for NFC",
        rules.rank,
        "001",
        applies=_contract("nfc"),
    ),
)
# The line defaults the desktop seed's printed config starts with (a Concert V2 line).  Text,
# as every answer is: the file's writer (config_file.py) turns off YAML's implicit typing, so
# a number would be written with an explicit tag (``baudRate: !!int '9600'``).
LINE_DEFAULTS: dict[str, str] = {
    "baudRate": "9600",
    "dataBits": "8",
    "parity": "none",
    "stopBits": "1",
}


def config_values(answers: Mapping[str, str]) -> dict[str, Any]:
    """The config file's content, in the order the seed prints it, contracts nested."""
    values: dict[str, Any] = dict(LINE_DEFAULTS)
    for question in QUESTIONS:
        answer = answers.get(question.key, "")
        if question.key in (INSTALL_DIR, CONTRACT_TYPE) or not question.applies(answers):
            continue
        if not answer and question.optional:
            continue
        *parents, leaf = question.key.split(".")
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = answer
    return values
