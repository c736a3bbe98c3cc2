"""A real TUF repository for the update tests, built with python-tuf's Metadata API.

Written to a folder laid out as the connector reads it (``metadata/`` and ``targets/``)
and served by a real HTTP server on 127.0.0.1.  The tests sign it right, then wrong in
each way the feed must refuse: tampered target bytes, a key the root does not trust, an
expired timestamp, older metadata replayed.  Independent of ``supervisor_agent.update``'s
own publishing code, so a mistake shared by both cannot pass unnoticed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
LATEST = "ecr-connector/latest.json"


def new_signer() -> CryptoSigner:
    private = Ed25519PrivateKey.generate()
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))


def in_days(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


class TufRepo:
    """One repository, one ed25519 key per top-level role."""

    def __init__(self, folder: Path, *, consistent_snapshot: bool = False) -> None:
        self.folder = folder
        self.metadata_dir = folder / "metadata"
        self.targets_dir = folder / "targets"
        self.metadata_dir.mkdir(parents=True)
        self.targets_dir.mkdir(parents=True)
        self.signers = {role: new_signer() for role in ROLES}
        root = Root(expires=in_days(365), consistent_snapshot=consistent_snapshot)
        for role in ROLES:
            root.add_key(self.signers[role].public_key, role)
        self.root = Metadata(root)
        self.targets = Metadata(Targets(expires=in_days(90)))
        self.snapshot = Metadata(Snapshot(expires=in_days(30)))
        self.timestamp = Metadata(Timestamp(expires=in_days(7)))
        self._signed_once = False
        self._write(self.root, self.signers[Root.type])
        self.sign_all()

    @property
    def consistent(self) -> bool:
        return bool(self.root.signed.consistent_snapshot)

    @property
    def root_file(self) -> Path:
        """The trusted root a connector is installed with (``update_root``)."""
        return self.metadata_dir / "1.root.json"

    # -- targets ---------------------------------------------------------------------
    def add_target(self, path: str, data: bytes, *, served: bytes | None = None) -> None:
        """Sign ``data`` as target ``path``; serve ``served`` instead when given (tampering)."""
        info = TargetFile.from_data(path, data, ["sha256"])
        self.targets.signed.targets[path] = info
        self.serve_target(path, data if served is None else served)

    def serve_target(self, path: str, data: bytes) -> None:
        """Put bytes where a client fetches target ``path``, whatever the metadata says."""
        info = self.targets.signed.targets[path]
        dirname, _, name = path.rpartition("/")
        if self.consistent:
            name = f"{info.hashes['sha256']}.{name}"
        dest = self.targets_dir / dirname / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)

    def add_release(self, version: str, wheel: Path, *, served: bytes | None = None) -> None:
        """The wheel and ``latest.json`` naming it, as ``ecr-connector publish`` would."""
        wheel_target = f"ecr-connector/{wheel.name}"
        self.add_target(wheel_target, wheel.read_bytes(), served=served)
        latest = json.dumps({"version": version, "wheel": wheel_target}).encode()
        self.add_target(LATEST, latest)

    # -- signing ---------------------------------------------------------------------
    def _write(self, md: Metadata[Any], signer: CryptoSigner) -> None:
        md.signatures.clear()
        md.sign(signer)
        role = md.signed.type
        data = md.to_bytes(JSONSerializer(compact=False))
        if role == Root.type:
            (self.metadata_dir / f"{md.signed.version}.root.json").write_bytes(data)
            return
        if role != Timestamp.type and self.consistent:
            (self.metadata_dir / f"{md.signed.version}.{role}.json").write_bytes(data)
        (self.metadata_dir / f"{role}.json").write_bytes(data)

    def sign_all(
        self,
        *,
        timestamp_expires: datetime | None = None,
        timestamp_signer: CryptoSigner | None = None,
    ) -> None:
        """Sign targets, snapshot, timestamp; every call after the first bumps their versions."""
        if self._signed_once:
            for md in (self.targets, self.snapshot, self.timestamp):
                md.signed.version += 1
        self._signed_once = True
        self._write(self.targets, self.signers[Targets.type])
        self.snapshot.signed.meta[f"{Targets.type}.json"] = MetaFile(self.targets.signed.version)
        self._write(self.snapshot, self.signers[Snapshot.type])
        self.timestamp.signed.snapshot_meta = MetaFile(self.snapshot.signed.version)
        self.timestamp.signed.expires = timestamp_expires or in_days(7)
        self._write(self.timestamp, timestamp_signer or self.signers[Timestamp.type])

    # -- replays ---------------------------------------------------------------------
    def save_state(self, where: Path) -> None:
        """Copy the metadata as served now, to replay later."""
        shutil.copytree(self.metadata_dir, where)

    def serve_metadata(self, role: str, data: bytes, *, version: int) -> None:
        """Serve ``data`` where a client fetches ``role`` at ``version`` (a replayed file)."""
        (self.metadata_dir / f"{role}.json").write_bytes(data)
        if self.consistent:
            (self.metadata_dir / f"{version}.{role}.json").write_bytes(data)

    def replay(self, saved: Path) -> None:
        """Serve an older copy of the metadata again (a rollback attack)."""
        shutil.rmtree(self.metadata_dir)
        shutil.copytree(saved, self.metadata_dir)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (any free port) serving ``folder``; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="tuf-repo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
