"""Where the connector keeps its files under ``data_dir``; one place, so every process agrees."""

from __future__ import annotations

from pathlib import Path


def run_dir(data_dir: Path) -> Path:
    """Sockets, pidfiles, the rendered supervisord.conf: private (0700)."""
    return data_dir / "run"


def log_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


def program_log(data_dir: Path, program: str) -> Path:
    """A program's JSON lines (tp-manager and the agent write theirs themselves)."""
    return log_dir(data_dir) / f"{program}.log"


def program_err_log(data_dir: Path, program: str) -> Path:
    """What a program printed outside its log (before logging was set up, a crash),
    kept by supervisord."""
    return log_dir(data_dir) / f"{program}.err.log"


# Set by `ecr-connector run` in each program's environment (supervisord.conf): the file
# the program writes its log lines to (common/logging.py).  An environment variable, not
# an option: a version that does not know it still starts, and logs to stdout.
LOG_FILE_ENV = "ECR_CONNECTOR_LOG_FILE"


def notifier_lock(data_dir: Path) -> Path:
    """Held (``flock``) by the one HiPay notifier this data directory may have."""
    return run_dir(data_dir) / "notifier.lock"


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


# Files the connector creates are its user's alone (journal, logs, results, sockets): the
# journal holds orders and customers, the logs order ids; no other local user reads them.
PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700


def make_private(directory: Path) -> None:
    """``directory`` 0700, and what it already holds without group/other bits (an older
    install wrote them 0644): nothing in it stays readable by another local user."""
    directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    directory.chmod(PRIVATE_DIR_MODE)
    for entry in directory.iterdir():
        if entry.is_file() and not entry.is_symlink():
            mode = entry.stat().st_mode & 0o777
            if mode & 0o077:
                entry.chmod(mode & 0o700)


def update_dir(data_dir: Path) -> Path:
    """The self-update's TUF metadata cache, downloads and status."""
    return data_dir / "update"


def update_root(data_dir: Path) -> Path:
    """The trusted TUF root metadata when the config does not name one."""
    return update_dir(data_dir) / "root.json"


def versions_dir(data_dir: Path) -> Path:
    """The installed versions and the ``current``/``previous``/``base`` links to them."""
    return data_dir / "versions"
