"""Wrong credentials are throttled per (client address, username): 429 with Retry-After,
logged once per lockout, and a correct client elsewhere is not slowed."""

from __future__ import annotations

import aiohttp
from structlog.testing import capture_logs

from supervisor_agent.api.throttle import (
    FAILURES_BEFORE_LOCKOUT,
    LOCKOUT_S,
    MAX_TRACKED_KEYS,
    AuthThrottle,
    ThrottlePolicy,
)
from tests.api.conftest import Api, basic
from tests.api.test_api_transport import assert_error

ATTEMPTS = 200
OTHER_LOOPBACK = "127.0.0.2"  # Linux routes all of 127/8 to lo: a second client address


async def test_wrong_passwords_get_429_with_retry_after_logged_once(api: Api) -> None:
    statuses = []
    with capture_logs() as logs:
        for i in range(ATTEMPTS):
            status, body, headers = await api.get("/version", auth=basic(password=f"guess{i}"))
            statuses.append(status)
            if status == 429:
                err = assert_error(body, 429, "TOO_MANY_ATTEMPTS")
                assert err["details"]["rule"] == "auth_throttle"
                assert 1 <= int(headers["Retry-After"]) <= LOCKOUT_S
    assert statuses[:FAILURES_BEFORE_LOCKOUT] == [401] * FAILURES_BEFORE_LOCKOUT
    assert set(statuses[FAILURES_BEFORE_LOCKOUT:]) == {429}
    throttled = [e for e in logs if e["event"] == "api.auth.throttled"]
    assert len(throttled) == 1 and throttled[0]["log_level"] == "warning"
    assert "guess" not in str(logs)  # never the credentials tried
    # while locked, even the right password for that user from that address is 429: a
    # locked guesser must not learn which password is right
    status, _, _ = await api.get("/version")
    assert status == 429


async def test_a_correct_client_is_not_slowed_by_someone_elses_failures(api: Api) -> None:
    # a guesser on this host trying another username locks only that username
    for i in range(FAILURES_BEFORE_LOCKOUT + 5):
        await api.get("/version", auth=basic(user="admin", password=f"guess{i}"))
    status, _, _ = await api.get("/version", auth=basic(user="admin", password="guess-more"))
    assert status == 429
    status, body, _ = await api.get("/version")
    assert status == 200, body

    # a guesser locking the register's own username from 127.0.0.1 does not touch the
    # register on another address
    for i in range(FAILURES_BEFORE_LOCKOUT):
        await api.get("/version", auth=basic(password=f"guess{i}"))
    assert (await api.get("/version"))[0] == 429
    connector = aiohttp.TCPConnector(local_addr=(OTHER_LOOPBACK, 0))
    async with aiohttp.ClientSession(connector=connector) as other:
        async with other.get(api.base_url + "/version", headers={"Authorization": basic()}) as resp:
            assert resp.status == 200


async def test_missing_credentials_are_not_counted_and_success_clears(api: Api) -> None:
    for _ in range(FAILURES_BEFORE_LOCKOUT * 2):
        assert (await api.get("/version", auth=None))[0] == 401
    for _ in range(3):
        for i in range(FAILURES_BEFORE_LOCKOUT - 1):
            assert (await api.get("/version", auth=basic(password=f"typo{i}")))[0] == 401
        assert (await api.get("/version"))[0] == 200  # the register fixed its typo


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lockout_ends_and_old_failures_expire() -> None:
    clock = FakeClock()
    throttle = AuthThrottle(ThrottlePolicy(failures=3, window_s=10.0, lockout_s=30.0), clock)
    key = ("10.0.0.5", "register")
    for _ in range(2):
        throttle.failed(key)
    clock.now += 11  # the first two fall out of the window
    throttle.failed(key)
    assert throttle.retry_after_s(key) is None
    throttle.failed(key)
    throttle.failed(key)
    assert throttle.retry_after_s(key) == 30
    clock.now += 29.5
    assert throttle.retry_after_s(key) == 1
    clock.now += 1
    assert throttle.retry_after_s(key) is None


def test_the_table_is_bounded() -> None:
    throttle = AuthThrottle()
    for i in range(MAX_TRACKED_KEYS + 100):
        throttle.failed(("10.0.0.5", f"user{i}"))
    assert len(throttle._failures) == MAX_TRACKED_KEYS
