"""``GET /metrics`` says what the journal says at the moment it is scraped: the outbox's
pending notifications and the oldest of them, read together (a scrape never says "2
pending" beside "0: none pending"), the journal's size, the last accepted payment.

The API as the agent wires it (tests/operator/conftest.py): real journal on a real
SQLite file, the notifier with HiPay unreachable (the notification stays pending), a real
ZeroMQ peer standing in for tp-manager."""

from __future__ import annotations

from tests.api.conftest import RecordingTpManager
from tests.operator.conftest import Served, serve_operator


async def scrape(served: Served) -> dict[str, float]:
    async with served.session.get(served.base_url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines())
        if name.startswith("ecr_")
    }


async def test_a_scrape_reads_the_outbox_and_the_journal_as_they_are_now(
    tpm: RecordingTpManager,
) -> None:
    async with serve_operator(tpm) as served:
        before = await scrape(served)
        assert before['ecr_notifications{state="pending"}'] == 0
        assert before["ecr_notification_oldest_pending_timestamp_seconds"] == 0

        async with served.session.post(
            served.base_url + "/", json={"amount": "9.99", "order_id": "M-1"}
        ) as paid:
            assert paid.status == 200
        async with served.session.get(served.base_url + "/notifications?state=pending") as got:
            pending = (await got.json())["notifications"]
        assert [n["order_id"] for n in pending] == ["M-1"]  # HiPay is not there

        after = await scrape(served)
        assert after['ecr_notifications{state="pending"}'] == 1
        assert (
            after["ecr_notification_oldest_pending_timestamp_seconds"] == pending[0]["created_at"]
        )
        journal = served.operator.status.journal
        assert after["ecr_journal_size_bytes"] > 0
        assert after["ecr_last_accepted_payment_timestamp_seconds"] == journal.last_accepted_at()
