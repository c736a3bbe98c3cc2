"""A real headless Chromium (Debian's ``chromium``) driven over the DevTools protocol.

Just what the status page test needs: open a page with an ``Authorization`` header on
every request (EventSource included), evaluate JavaScript, take screenshots, and see
every URL the page asked for.  The protocol is spoken over aiohttp's WebSocket client:
no browser download, no extra package.  The browser runs in its own session and is
killed by pid at the end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import aiohttp

START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0
POLL_S = 0.1


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            body = json.loads(message.data)
            future = self._pending.pop(body.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(body)
            elif "method" in body:
                self.events.append(body)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        body = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error']}")
        result: dict[str, Any] = body.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float, what: str) -> Any:
        """Poll a JavaScript expression until it is truthy (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        value = None
        while loop.time() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(POLL_S)
        raise TimeoutError(f"timed out after {timeout_s} s waiting for {what} (last: {value!r})")

    async def open(self, url: str, headers: dict[str, str], width: int, height: int) -> None:
        await self.call("Network.enable")
        await self.call("Network.setExtraHTTPHeaders", headers=headers)
        await self.call("Page.enable")
        await self.size(width, height)
        await self.call("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", START_TIMEOUT_S, "the page")

    async def size(self, width: int, height: int) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return _write_png(path, shot["data"])

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()


async def _devtools_port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    """Chromium writes the port it chose into the profile once it listens."""
    marker = profile / "DevToolsActivePort"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        if marker.exists():
            first = marker.read_text().splitlines()[:1]
            if first and first[0].isdigit():
                return int(first[0])
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"chromium did not open its DevTools port within {START_TIMEOUT_S} s")


def _write_png(path: Path, data: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(data))
    return path


def _launch(workdir: Path) -> tuple[subprocess.Popen[bytes], Path, IO[bytes]]:
    """Chromium in its own session, output to ``chromium.log``; DevTools on a free port."""
    binary = chromium_path()
    assert binary is not None
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "chromium.log", "wb")
    args = [
        binary,
        "--headless=new",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses root without it
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, profile, log


def _kill(proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the renderers too
    proc.wait(timeout=10)
    log.close()


@contextlib.asynccontextmanager
async def headless_chromium(workdir: Path) -> AsyncIterator[Browser]:
    proc, profile, log = _launch(workdir)
    try:
        port = await _devtools_port(profile, proc)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as listed:
                targets = await listed.json()
            page = next(t for t in targets if t.get("type") == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                browser = Browser(ws)
                try:
                    yield browser
                finally:
                    await browser.close()
    finally:
        _kill(proc, log)
