"""Where the connector keeps its files under ``data_dir``; one place, so every process agrees."""

from __future__ import annotations

from pathlib import Path


def run_dir(data_dir: Path) -> Path:
    """Sockets, pidfiles, the rendered supervisord.conf: private (0700)."""
    return data_dir / "run"


def log_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


def journal_path(data_dir: Path) -> Path:
    return data_dir / "journal.sqlite3"


def supervisord_pidfile(data_dir: Path) -> Path:
    return run_dir(data_dir) / "supervisord.pid"


def supervisord_socket(data_dir: Path) -> Path:
    return run_dir(data_dir) / "supervisor.sock"


def simulator_tty(data_dir: Path) -> Path:
    """A symlink the built-in simulator keeps pointing at its current pty."""
    return run_dir(data_dir) / "simulator.tty"


def tp_manager_results(data_dir: Path) -> Path:
    """tp-manager's result store: verdicts the agent has not acknowledged yet."""
    return data_dir / "tp-manager-results.sqlite3"
