"""The interactive setup: one prompt per question, checked as it is typed.

questionary (on prompt_toolkit) draws the prompts.  A default is shown in
brackets and taken by an empty answer, rather than pre-filled, so typing over
it works the same on a person's terminal and on a program driving a pty.
Passwords are echoed as ``*``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import questionary

from common.setup.questions import CONTRACT_TYPE, CONTRACTS_INTRO, QUESTIONS, Question
from common.setup.serial_ports import detected_ports, suggested

# prompt_toolkit asks the terminal where the cursor is (CPR) and waits for an answer a
# program driving a pty, a serial console or a dumb terminal never sends
NO_CPR_ENV = "PROMPT_TOOLKIT_NO_CPR"


def _validator(question: Question, default: str | None) -> Callable[[str], bool | str]:
    def validate(text: str) -> bool | str:
        return question.problem(text or default or "") or True

    return validate


def _serial_port_intro() -> str | None:
    """Print what pyserial sees; the one likely terminal becomes the default."""
    ports = detected_ports()
    if ports:
        print("Serial ports found (or type a path, like /dev/ttyUSB0, or 'simulator'):")
        for port in ports:
            print(f"  {port.label()}")
    else:
        print("No serial port found: plug the terminal in, or type 'simulator' to try it out.")
    return suggested(ports)


def ask(question: Question, default: str | None) -> str:
    """One answer (the default when left empty); Ctrl-C raises KeyboardInterrupt."""
    shown = f"{question.text} [{default}]" if default and not question.secret else question.text
    prompt = questionary.password if question.secret else questionary.text
    answer: str = prompt(shown, validate=_validator(question, default)).unsafe_ask()
    return answer or default or ""


def ask_all() -> dict[str, str]:
    """Every question that applies, in the seed installer's order."""
    os.environ.setdefault(NO_CPR_ENV, "1")
    answers: dict[str, str] = {}
    for question in QUESTIONS:
        if not question.applies(answers):
            continue
        default = question.default_for(answers)
        if question.key == "serial_port":
            default = _serial_port_intro() or default
        if question.key == CONTRACT_TYPE:
            print(CONTRACTS_INTRO)
        answers[question.key] = ask(question, default)
    return answers


def confirm_replace(path: str) -> bool:
    return bool(questionary.confirm(f"{path} exists. Replace it?", default=False).unsafe_ask())
