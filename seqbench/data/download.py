"""Downloads of registry datasets through pooch, checked against a checksum every time.

Where the provider publishes a checksum it is used. Where none is published, the first download
is trusted: its sha256 is recorded in ``<cache>/downloads/trusted-sha256.json`` with a warning,
and every later download (a re-download, a mirror) must match it. ``--mirror URL`` or
``$SEQBENCH_MIRROR`` fetch ``URL/<file name>`` instead of the official address (clusters with an
internal mirror; the tests' local server); checksums apply unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from seqbench import atomic
from seqbench.data.cache import file_sha256, read_json, write_json_atomic
from seqbench.data.registry import DatasetEntry, RemoteFile
from seqbench.errors import ConfigError, DownloadError
from seqbench.progress import BarFactory

log = logging.getLogger(__name__)

ENV_MIRROR = "SEQBENCH_MIRROR"
_SCHEMES = ("https://", "http://", "ftp://", "sftp://")


def fetch(
    entry: DatasetEntry,
    root: Path,
    *,
    mirror: str | None = None,
    bars: BarFactory | None = None,
) -> Path:
    """The local file to read for ``entry``: downloaded once, verified, extracted if archived."""
    remote = _remote(entry)
    path = fetch_archive(entry, root, mirror=mirror, bars=bars)
    if remote.member is None:
        return path
    return _extract(entry, path, remote.member, root / "downloads" / entry.name)


def member_file(
    entry: DatasetEntry,
    member: str,
    root: Path,
    *,
    mirror: str | None = None,
    bars: BarFactory | None = None,
) -> Path:
    """Another member of ``entry``'s downloaded archive (e.g. its item text), extracted once
    (and checked against the registry's sha256 for it, where one is pinned)."""
    path = fetch_archive(entry, root, mirror=mirror, bars=bars)
    return _extract(entry, path, member, root / "downloads" / entry.name)


def check_local_copy(entry: DatasetEntry, member: str, path: Path) -> None:
    """A data-folder file standing in for ``member`` of ``entry``'s download must hold the very
    bytes the registry pins for it (so that it gives the same cell hashes as the download)."""
    expected = _remote(entry).members_sha256.get(member)
    if expected is None:
        return
    actual = file_sha256(path)
    if actual != expected:
        raise DownloadError(
            f"dataset {entry.name!r}: the local copy {path} is not the file the registry names "
            f"({member} of {_remote(entry).filename}): its sha256 is {actual}, expected "
            f"{expected}. Remove it from the data folder to download the original, or give the "
            "dataset another name with path = … to use your file"
        )


def fetch_archive(
    entry: DatasetEntry,
    root: Path,
    *,
    mirror: str | None = None,
    bars: BarFactory | None = None,
) -> Path:
    """``entry``'s downloaded file (the archive itself for archived data), verified."""
    import pooch  # lazy: pulls in requests

    remote = _remote(entry)
    folder = root / "downloads" / entry.name
    mirror = mirror or os.environ.get(ENV_MIRROR)
    if mirror and not mirror.startswith(_SCHEMES):
        raise ConfigError(f"mirror {mirror!r}: expected a URL starting with {', '.join(_SCHEMES)}")
    url = f"{mirror.rstrip('/')}/{remote.filename}" if mirror else remote.url
    trust_file = root / "downloads" / "trusted-sha256.json"
    trusted = read_json(trust_file).get(entry.name, {}).get("sha256")
    known_hash = remote.known_hash or (f"sha256:{trusted}" if trusted else None)

    pooch.get_logger().setLevel(logging.WARNING)  # seqbench reports downloads itself
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".download.lock")):
        try:
            path = Path(
                pooch.retrieve(
                    url,
                    known_hash=known_hash,
                    fname=remote.filename,
                    path=folder,
                    progressbar=bars(f"downloading {remote.filename}") if bars else False,
                )
            )
        except ValueError as exc:
            if "does not match the known hash" not in str(exc):
                raise DownloadError(
                    f"dataset {entry.name!r}: cannot download {url} ({exc})"
                ) from None
            raise DownloadError(_mismatch_message(entry, remote, url, exc)) from None
        except OSError as exc:  # requests' errors are OSErrors too
            raise DownloadError(
                f"dataset {entry.name!r}: could not download {url} ({exc}). Without network, "
                f"download it elsewhere and pass --path FILE --format {entry.format}, or point "
                f"--mirror / ${ENV_MIRROR} at a copy"
            ) from None
        if known_hash is None:
            _trust_first_download(entry, url, path, trust_file)
        return path


def _remote(entry: DatasetEntry) -> RemoteFile:
    if entry.remote is None:
        raise DownloadError(f"dataset {entry.name!r} has nothing to download")
    return entry.remote


def _mismatch_message(entry: DatasetEntry, remote: RemoteFile, url: str, exc: Exception) -> str:
    if remote.known_hash:
        origin = f"the checksum published at {remote.hash_source}"
    else:
        origin = "the sha256 recorded at its first download (no checksum is published)"
    return (
        f"dataset {entry.name!r}: the file downloaded from {url} does not match {origin}: "
        f"{exc} The file was not used. If a mirror served it, check the mirror; if the provider "
        "changed the file, results would no longer be comparable: remove the entry from "
        "downloads/trusted-sha256.json in the cache only if you accept that"
    )


def _trust_first_download(entry: DatasetEntry, url: str, path: Path, trust_file: Path) -> None:
    digest = file_sha256(path)
    with FileLock(str(trust_file) + ".lock"):
        records = read_json(trust_file)
        records[entry.name] = {
            "sha256": digest,
            "url": url,
            "file": path.name,
            "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json_atomic(trust_file, records)
    log.warning(
        "dataset %r: no checksum is published for %s; trusting this first download and "
        "recording its sha256 %s in %s; later downloads must match it",
        entry.name,
        url,
        digest,
        trust_file,
    )


def _extract(entry: DatasetEntry, archive: Path, member: str, folder: Path) -> Path:
    """Extract one member (named by the registry, never by the archive) unless already there;
    a member whose sha256 the registry pins is checked once extracted."""
    target = folder / "extracted" / member
    if target.is_file() and target.stat().st_mtime_ns >= archive.stat().st_mtime_ns:
        return target
    try:
        with zipfile.ZipFile(archive) as zf:
            try:
                data = zf.read(member)
            except KeyError:
                names = ", ".join(zf.namelist()[:10])
                raise DownloadError(
                    f"{archive}: the archive has no member {member!r} (it has: {names} …)"
                ) from None
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive}: not a readable zip archive ({exc})") from None
    expected = _remote(entry).members_sha256.get(member)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise DownloadError(
            f"{archive}: member {member} does not match the sha256 the registry pins for it "
            f"({expected}); the archive verified, so the registry entry is out of date"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(target, data)
    return target
