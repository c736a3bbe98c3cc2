"""The running connector's API, as the technician's commands (``status``, ``pay``) reach it.

They read the same config file as the connector (the demo's without ``--config``, as
``run`` and ``doctor``), so they find its port and credentials themselves; they only
talk HTTP to the API (never to the journal or tp-manager directly), so what they show
is what a register would get.
"""

from __future__ import annotations

import argparse
import base64
from dataclasses import dataclass

import aiohttp

from common.config import ConfigError, load_config_arg
from supervisor_agent.api.settings import ApiSettings, api_settings

ANY_ADDRESS = {"0.0.0.0", "::", ""}  # noqa: S104 (we connect to it, we do not bind it)


class CliError(Exception):
    """A problem the technician can act on: one line, no traceback."""


@dataclass(frozen=True)
class ApiTarget:
    base_url: str
    authorization: str
    settings: ApiSettings

    @classmethod
    def from_config(cls, path: str) -> ApiTarget:
        try:
            settings = api_settings(load_config_arg(path))
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        host = "127.0.0.1" if settings.bind_address in ANY_ADDRESS else settings.bind_address
        if ":" in host:
            host = f"[{host}]"
        pair = f"{settings.api_username}:{settings.api_password}".encode()
        return cls(
            base_url=f"http://{host}:{settings.local_port}",
            authorization="Basic " + base64.b64encode(pair).decode("ascii"),
            settings=settings,
        )

    def session(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=timeout, headers={"Authorization": self.authorization})

    def unreachable(self, exc: Exception) -> CliError:
        return CliError(
            f"the connector's API at {self.base_url} does not answer ({type(exc).__name__}): "
            "is it running? (ecr-connector run --config FILE)"
        )


def refused(status: int, body: object) -> CliError:
    """A 4xx/5xx JSON error from the API, as one line."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("errorCode")
        message = error.get("message") or error.get("errorDescription")
        return CliError(f"HTTP {status} {code}: {message}")
    return CliError(f"HTTP {status}: {str(body)[:200]}")


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default="demo",
        help="the connector's config file (config.yml or config.txt); without it, the demo's",
    )
