"""The status page's last problems say why, not only what: a technician reads them first.

The whole connector under supervisord, HiPay's stand-in refusing with 503 and a customer
the simulator never answers for: the agent's lines ``agent.payment.outcome_unknown``
(its ``error_code``) and ``hipay.notify.unreachable`` (its ``reason``) reach
``/status.json``'s problems and ``ecr-connector status`` with those fields, as the log
(redacted) has them."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_supervised_stack import NEVER_ANSWERS, link_up
from tests.operator.terminal import ecr_connector
from tests.stack import Stack, hipay_stub, running_stack, wait_for

CLI_TIMEOUT_S = 90.0
PROBLEM_TIMEOUT_S = 60.0


def problems(stack: Stack) -> dict[str, dict]:
    status, facts = stack.request("GET", "/status.json", timeout_s=15)
    assert status == 200
    return {p["event"]: p for p in facts["problems"]}


def test_the_last_problems_say_why(tmp_path: Path) -> None:
    with hipay_stub(tmp_path) as hipay:
        hipay.control(fail_next=1000, status=503)
        with running_stack(
            tmp_path,
            hipay_base_url=hipay.url + "/",
            hipay_login=hipay.login,
            hipay_password=hipay.password,
            transaction_timeout=2,
        ) as stack:
            wait_for(lambda: link_up(stack), 60, "the terminal link")
            status, body = stack.request(
                "POST", "/", {"amount": NEVER_ANSWERS, "order_id": "PROBLEM-1"}, timeout_s=30
            )
            assert status == 200 and body["transactionState"] == "unknown", body
            seen = wait_for(
                lambda: (p := problems(stack)).get("hipay.notify.unreachable") and p,
                PROBLEM_TIMEOUT_S,
                "HiPay's outage among the problems",
            )
            unknown = seen["agent.payment.outcome_unknown"]
            assert unknown["order_id"] == "PROBLEM-1"
            assert unknown["error_code"] == body["errorCode"], (unknown, body)
            assert "503" in seen["hipay.notify.unreachable"]["reason"], seen

            run = ecr_connector(["status", "--config", str(stack.config_path)], CLI_TIMEOUT_S)
            text = " ".join(run.text.split())
            assert f"agent.payment.outcome_unknown order PROBLEM-1: {body['errorCode']}" in text
            assert "hipay.notify.unreachable order PROBLEM-1: HTTP 503" in text, run.text
