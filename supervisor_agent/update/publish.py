"""``ecr-connector publish``: the publisher's side of the update feed.

A feed is a folder any static web server can serve (``update_url`` points at it):
``metadata/`` holds the TUF metadata, ``targets/`` the files.  The keys are PEM files,
one per TUF role (``root.pem``, ``targets.pem``, ``snapshot.pem``, ``timestamp.pem``),
made by ``--init`` and kept off the web server; only their public halves are in the
metadata, and nothing here ever prints a private key.

* ``--init``: new keys (unless the files exist), root version 1 and empty
  targets/snapshot/timestamp; ``metadata/1.root.json`` is the ``update_root`` every
  connector is installed with.
* ``--wheel FILE`` or ``--source DIR`` (built with ``pip wheel --no-deps``): the wheel
  and ``ecr-connector/latest.json`` naming it become targets; targets, snapshot and
  timestamp are bumped and signed.
* ``--refresh``: snapshot and timestamp bumped and re-signed with new expiry dates.
  The timestamp expires after :data:`EXPIRES_DAYS` ``timestamp`` days so that a frozen
  feed is noticed: run ``--refresh`` from cron well within that.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from supervisor_agent.update.feed import LATEST_TARGET, PROJECT

ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
EXPIRES_DAYS = {Root.type: 365, Targets.type: 365, Snapshot.type: 30, Timestamp.type: 7}
TARGET_DIR = "ecr-connector"


class PublishError(Exception):
    pass


def _expiry(role: str) -> datetime:
    return (datetime.now(UTC) + timedelta(days=EXPIRES_DAYS[role])).replace(microsecond=0)


def _key_file(keys: Path, role: str) -> Path:
    return keys / f"{role}.pem"


def _new_key(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.write_bytes(pem)


def load_signer(keys: Path, role: str) -> CryptoSigner:
    path = _key_file(keys, role)
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PublishError(
            f"cannot load the {role} key from {path}: {type(exc).__name__}"
        ) from None
    public = SSlibKey.from_crypto(private.public_key())
    return CryptoSigner(private, public)


class Repository:
    """The feed on disk: load the newest metadata, change it, sign it, write it back."""

    def __init__(self, folder: Path, keys: Path) -> None:
        self.folder = folder
        self.keys = keys
        self.metadata_dir = folder / "metadata"
        self.targets_dir = folder / "targets"

    def _newest_root(self) -> Metadata[Root]:
        numbered = sorted(
            (int(p.name.split(".", 1)[0]), p)
            for p in self.metadata_dir.glob("*.root.json")
            if p.name.split(".", 1)[0].isdigit()
        )
        if not numbered:
            raise PublishError(f"no N.root.json in {self.metadata_dir}: run --init first")
        return Metadata[Root].from_file(str(numbered[-1][1]))

    def _load(self, role: str) -> Metadata[Any]:
        path = self.metadata_dir / f"{role}.json"
        try:
            return Metadata.from_file(str(path))
        except OSError as exc:
            raise PublishError(f"cannot read {path}: {exc.strerror}") from None

    def _signer(self, root: Root, role: str) -> CryptoSigner:
        signer = load_signer(self.keys, role)
        if signer.public_key.keyid not in root.roles[role].keyids:
            raise PublishError(
                f"{_key_file(self.keys, role)} is not a {role} key of the feed's root"
            )
        return signer

    def _write(self, md: Metadata[Any], root: Root) -> None:
        role = md.signed.type
        md.signatures.clear()
        md.sign(self._signer(root, role))
        data = md.to_bytes(JSONSerializer(compact=False))
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        if role == Root.type:
            (self.metadata_dir / f"{md.signed.version}.root.json").write_bytes(data)
            (self.metadata_dir / "root.json").write_bytes(data)
            return
        if role != Timestamp.type and root.consistent_snapshot:
            (self.metadata_dir / f"{md.signed.version}.{role}.json").write_bytes(data)
        (self.metadata_dir / f"{role}.json").write_bytes(data)

    def init(self, consistent_snapshot: bool) -> Path:
        if list(self.metadata_dir.glob("*.root.json")):
            raise PublishError(f"{self.metadata_dir} already has a root: not starting over")
        for role in ROLES:
            if not _key_file(self.keys, role).exists():
                _new_key(_key_file(self.keys, role))
        root = Root(expires=_expiry(Root.type), consistent_snapshot=consistent_snapshot)
        for role in ROLES:
            root.add_key(load_signer(self.keys, role).public_key, role)
        self._write(Metadata(root), root)
        targets = Metadata(Targets(expires=_expiry(Targets.type)))
        snapshot = Metadata(Snapshot(expires=_expiry(Snapshot.type)))
        timestamp = Metadata(Timestamp(expires=_expiry(Timestamp.type)))
        self._write(targets, root)
        self._write(snapshot, root)
        self._write(timestamp, root)
        return self.metadata_dir / "1.root.json"

    def _add_target(self, targets: Targets, root: Root, path: str, data: bytes) -> None:
        info = TargetFile.from_data(path, data, ["sha256"])
        targets.targets[path] = info
        dirname, _, name = path.rpartition("/")
        dest_dir = self.targets_dir / dirname
        dest_dir.mkdir(parents=True, exist_ok=True)
        (dest_dir / name).write_bytes(data)
        if root.consistent_snapshot:
            (dest_dir / f"{info.hashes['sha256']}.{name}").write_bytes(data)

    def _sign_snapshot_and_timestamp(self, root: Root, targets_version: int) -> None:
        snapshot: Metadata[Snapshot] = self._load(Snapshot.type)
        snapshot.signed.meta[f"{Targets.type}.json"] = MetaFile(targets_version)
        snapshot.signed.version += 1
        snapshot.signed.expires = _expiry(Snapshot.type)
        self._write(snapshot, root)
        timestamp: Metadata[Timestamp] = self._load(Timestamp.type)
        timestamp.signed.snapshot_meta = MetaFile(snapshot.signed.version)
        timestamp.signed.version += 1
        timestamp.signed.expires = _expiry(Timestamp.type)
        self._write(timestamp, root)

    def publish(self, wheel: Path) -> str:
        """Add ``wheel`` and the ``latest.json`` naming it; return the version published."""
        try:
            name, version, _, _ = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename as exc:
            raise PublishError(str(exc)) from None
        if name != PROJECT:
            raise PublishError(f"{wheel.name} is not a wheel of {PROJECT}")
        root = self._newest_root().signed
        for role in (Targets.type, Snapshot.type, Timestamp.type):
            self._signer(root, role)  # every key right before any file changes
        targets: Metadata[Targets] = self._load(Targets.type)
        wheel_target = f"{TARGET_DIR}/{wheel.name}"
        self._add_target(targets.signed, root, wheel_target, wheel.read_bytes())
        latest = json.dumps({"version": str(version), "wheel": wheel_target}, indent=2) + "\n"
        self._add_target(targets.signed, root, LATEST_TARGET, latest.encode())
        targets.signed.version += 1
        targets.signed.expires = _expiry(Targets.type)
        self._write(targets, root)
        self._sign_snapshot_and_timestamp(root, targets.signed.version)
        return str(version)

    def refresh(self) -> None:
        root = self._newest_root().signed
        targets: Metadata[Targets] = self._load(Targets.type)
        self._sign_snapshot_and_timestamp(root, targets.signed.version)


def build_wheel(source: Path, out_dir: Path) -> Path:
    """``pip wheel --no-deps`` of the project at ``source``: the one wheel it makes."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(out_dir),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(out_dir.glob(f"{PROJECT.replace('-', '_')}-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise PublishError(f"building the wheel of {source} failed: {done.stderr.strip()[-1500:]}")
    return wheels[0]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, type=Path, metavar="DIR", help="the feed's folder")
    parser.add_argument(
        "--keys", required=True, type=Path, metavar="DIR", help="the role key files (*.pem)"
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--init", action="store_true", help="create the feed and its keys")
    what.add_argument("--wheel", type=Path, metavar="FILE", help="publish this wheel")
    what.add_argument("--source", type=Path, metavar="DIR", help="build this project, publish it")
    what.add_argument(
        "--refresh", action="store_true", help="re-sign snapshot and timestamp (run from cron)"
    )
    parser.add_argument(
        "--consistent-snapshot",
        action="store_true",
        help="--init: versioned metadata and hash-prefixed targets (safe on a CDN)",
    )


def main(args: argparse.Namespace) -> int:
    repo = Repository(args.repo, args.keys)
    try:
        if args.init:
            root = repo.init(args.consistent_snapshot)
            print(
                f"publish: new feed in {args.repo}; keys in {args.keys} (keep them off the server)"
            )
            print(f"publish: install {root} on each connector as update_root")
        elif args.refresh:
            repo.refresh()
            print(f"publish: snapshot and timestamp re-signed in {args.repo}")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                wheel = args.wheel or build_wheel(args.source, Path(tmp))
                version = repo.publish(wheel)
            print(f"publish: {PROJECT} {version} is the latest release of {args.repo}")
    except PublishError as exc:
        print(f"ecr-connector publish: {exc}", file=sys.stderr)
        return 1
    return 0
