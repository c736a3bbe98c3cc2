"""The update feed, read through The Update Framework (python-tuf's ``ngclient``).

Nothing from the feed is believed unless TUF verified it: the root the operator
installed (``update_root``) signs the keys of the other roles; timestamp, snapshot and
targets metadata must be signed by those keys, unexpired, and never older than what
this connector saw before (the cache under ``<data_dir>/update/metadata/`` remembers),
and every file taken (``latest.json``, the wheel) must match its signed length and
hashes.  Repositories with and without consistent snapshots both work: ngclient reads
the flag from the trusted root and asks for hash-prefixed target names only then.

Every failure is a :class:`Refused` naming one :class:`Reason`, so the log line says
what went wrong in words an operator can act on.
"""

from __future__ import annotations

import enum
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from tuf.api import exceptions as tuf_errors
from tuf.ngclient import Updater

from common import paths

LATEST_TARGET = "ecr-connector/latest.json"
PROJECT = "ecr-connector"


class Reason(enum.StrEnum):
    """Why the feed was refused; the ``reason`` field of ``update.refused``."""

    NO_TRUSTED_ROOT = "no_trusted_root"  # update_root missing or unreadable
    BAD_SIGNATURE = "bad_signature"  # not signed by keys the trusted root names
    EXPIRED = "expired_metadata"  # a freeze attack, or a feed nobody re-signs
    ROLLED_BACK = "rolled_back_metadata"  # older metadata than already seen: a replay
    HASH_MISMATCH = "hash_mismatch"  # a file differs from its signed length or hashes
    UNREACHABLE = "unreachable_feed"  # connection, HTTP error, too slow
    INVALID_METADATA = "invalid_metadata"  # anything else TUF rejects
    BAD_RELEASE = "bad_release"  # latest.json missing, malformed, or naming no signed wheel


class Refused(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Release:
    """What ``ecr-connector/latest.json`` announces, once verified."""

    version: str
    wheel: str  # the wheel's target path, e.g. ecr-connector/ecr_connector-1.2.0-py3-none-any.whl

    @property
    def parsed(self) -> Version:
        return Version(self.version)


def _reason(exc: Exception) -> Reason:
    """The most specific reason first: TUF's errors form a hierarchy."""
    table: list[tuple[type[Exception], Reason]] = [
        (tuf_errors.UnsignedMetadataError, Reason.BAD_SIGNATURE),
        (tuf_errors.ExpiredMetadataError, Reason.EXPIRED),
        (tuf_errors.BadVersionNumberError, Reason.ROLLED_BACK),
        (tuf_errors.LengthOrHashMismatchError, Reason.HASH_MISMATCH),
        (tuf_errors.DownloadLengthMismatchError, Reason.HASH_MISMATCH),
        (tuf_errors.DownloadError, Reason.UNREACHABLE),
        (tuf_errors.RepositoryError, Reason.INVALID_METADATA),
    ]
    for kind, reason in table:
        if isinstance(exc, kind):
            return reason
    return Reason.INVALID_METADATA


def parse_release(data: bytes) -> Release:
    """``{"version": "X.Y.Z", "wheel": "ecr-connector/<wheel>"}``, the wheel really that version."""
    try:
        doc = json.loads(data)
        version, wheel = str(doc["version"]), str(doc["wheel"])
        name, wheel_version, _, _ = parse_wheel_filename(wheel.rsplit("/", 1)[-1])
        if Version(version) != wheel_version or name != PROJECT:
            raise ValueError(f"the wheel {wheel} is not {PROJECT} {version}")
    except (ValueError, KeyError, TypeError, InvalidVersion, InvalidWheelFilename) as exc:
        raise Refused(Reason.BAD_RELEASE, f"{LATEST_TARGET}: {exc}") from None
    return Release(version, wheel)


class Feed:
    """One refresh of the feed at ``url``: make a new one for each check (ngclient's rule)."""

    def __init__(self, url: str, root: Path, cache_dir: Path) -> None:
        self.url = url.rstrip("/")
        self.root = root
        self.metadata_dir = cache_dir / "metadata"
        self.download_dir = cache_dir / "downloads"
        self._updater: Updater | None = None

    @classmethod
    def for_connector(cls, url: str, root: Path, data_dir: Path) -> Feed:
        return cls(url, root, paths.update_dir(data_dir))

    def _refreshed(self) -> Updater:
        if self._updater is not None:
            return self._updater
        try:
            bootstrap = self.root.read_bytes()
        except OSError as exc:
            raise Refused(
                Reason.NO_TRUSTED_ROOT, f"cannot read update_root {self.root}: {exc.strerror}"
            ) from None
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        try:
            updater = Updater(
                metadata_dir=str(self.metadata_dir),
                metadata_base_url=f"{self.url}/metadata/",
                target_base_url=f"{self.url}/targets/",
                target_dir=str(self.download_dir),
                bootstrap=bootstrap,
            )
            updater.refresh()
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            raise Refused(_reason(exc), str(exc) or type(exc).__name__) from None
        except ValueError as exc:  # a bootstrap root that is not root metadata at all
            raise Refused(Reason.NO_TRUSTED_ROOT, f"update_root {self.root}: {exc}") from None
        self._updater = updater
        return updater

    def _download(self, target: str) -> Path:
        updater = self._refreshed()
        try:
            info = updater.get_targetinfo(target)
            if info is None:
                raise Refused(Reason.BAD_RELEASE, f"{target} is not a signed target of the feed")
            self.download_dir.mkdir(parents=True, exist_ok=True)
            dest = self.download_dir / target.rsplit("/", 1)[-1]
            return Path(updater.download_target(info, str(dest)))
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            raise Refused(_reason(exc), f"{target}: {exc or type(exc).__name__}") from None

    def latest(self) -> Release:
        """Refresh the metadata and read the verified ``latest.json``."""
        return parse_release(self._download(LATEST_TARGET).read_bytes())

    def wheel(self, release: Release) -> Path:
        """Download the release's wheel; its bytes are the signed ones, or it is refused."""
        return self._download(release.wheel)

    def clear_downloads(self) -> None:
        shutil.rmtree(self.download_dir, ignore_errors=True)
