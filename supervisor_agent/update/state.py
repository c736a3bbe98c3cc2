"""What the self-update remembers between runs, in ``<data_dir>/update/``.

* ``status.json``: the last update run (its number, where it is or how it ended, the
  versions, the reason) -- written by the agent and by the switcher, read by
  ``ecr-connector update --now`` to tell its caller what happened;
* ``rolled-back.json``: the versions that failed their health check, so the same
  release is never installed again (a newer one is).

Both are replaced atomically (write, then rename): a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from common import paths

Progress = Literal["checking", "installing", "waiting_for_payment", "switching"]
Ending = Literal[
    "off",
    "up_to_date",
    "skipped",
    "refused",
    "install_failed",
    "switch_failed",
    "switched",
    "rolled_back",
]
State = Progress | Ending
FINAL: frozenset[str] = frozenset(get_args(Ending))


@dataclass
class Status:
    run: int = 0
    state: State = "off"
    running: str = ""
    available: str | None = None
    reason: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def final(self) -> bool:
        return self.state in FINAL


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` whole or not at all, even across a power cut: the file is fsynced
    under a temporary name, then renamed over the old one.  A torn ``switch.json`` would
    send the next start back to the base environment instead of the previous version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new")
    with tmp.open("w") as out:
        out.write(json.dumps(data, indent=2) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def status_path(data_dir: Path) -> Path:
    return paths.update_dir(data_dir) / "status.json"


def read_status(data_dir: Path) -> Status:
    data = _read_json(status_path(data_dir))
    if not isinstance(data, dict):
        return Status()
    known = {k: v for k, v in data.items() if k in Status.__dataclass_fields__}
    return Status(**known)


def write_status(data_dir: Path, status: Status) -> None:
    status.at = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(status_path(data_dir), asdict(status))


def _rolled_back_path(data_dir: Path) -> Path:
    return paths.update_dir(data_dir) / "rolled-back.json"


def rolled_back(data_dir: Path) -> dict[str, str]:
    """Version -> why it was rolled back."""
    data = _read_json(_rolled_back_path(data_dir))
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def remember_rolled_back(data_dir: Path, version: str, reason: str) -> None:
    write_json(_rolled_back_path(data_dir), {**rolled_back(data_dir), version: reason})
