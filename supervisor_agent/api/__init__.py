"""The supervisor agent's local HTTP API (aiohttp): payments, POS API, maintenance.

docs/http-api.md describes the routes and shapes; docs/error-codes.md the codes.
"""

from supervisor_agent.api.app import create_app, start_server

__all__ = ["create_app", "start_server"]
