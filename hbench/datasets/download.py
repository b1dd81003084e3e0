"""Obtaining raw files: local cache, then offline mirrors, then a verified, resumable download.

`fetch_raw_files(spec, dest, sources, feedback)` returns, for every name the dataset's reader needs, a
local path to verified bytes: each plain `RawFile.name`, and for an archive each needed member keyed by
its base name (the archive itself is an implementation detail the reader never sees).

Every byte a reader gets is checked against a SHA-256: the pinned one when the spec knows it, otherwise
the one recorded in `dest/hashes.json`, so that a source that changes under a published benchmark is
noticed instead of silently producing different numbers. Fetching never records a hash: a truncated or
wrong first download would become the reference. The caller records them (`record_hashes`) once the files
have parsed and matched the source's published statistics, and forgets files that did not (`forget`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from hbench.atomic import atomic_path, sha256_file, write_json
from hbench.datasets.spec import DatasetSpec, RawFile
from hbench.errors import HBenchError
from hbench.ui import Feedback

HASHES = "hashes.json"
_CHUNK = 1 << 16
_MIRROR_DEPTH = 3
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_USER_AGENT = "hbench"


def fetch_raw_files(
    spec: DatasetSpec,
    dest: Path,
    sources: list[Path],
    feedback: Feedback,
    *,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    trust_records: bool = True,
) -> dict[str, Path]:
    """Local paths to verified bytes for every file `spec`'s reader needs, fetching what is missing.

    Network is used only for files found neither in `dest` nor in `sources` (searched in order).
    `trust_records=False` checks unpinned files against nothing recorded (`prepare --force` verifies them
    anew, through their statistics).
    """
    ctx = _Context(spec, Path(dest), [Path(s) for s in sources], feedback, retries, backoff, timeout, trust_records)
    ctx.dest.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for raw in spec.raw_files:
        paths.update(_fetch_archive_members(raw, ctx) if raw.members else {raw.name: _fetch_file(raw, ctx)})
    return paths


def verify_file(path: Path, expected: str | None) -> str:
    """SHA-256 of `path`, raising when it differs from `expected`: the check every cached file passes."""
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise HBenchError(f"{path} has SHA-256 {actual[:12]}…, expected {expected[:12]}…")
    return actual


@dataclass
class _Context:
    spec: DatasetSpec
    dest: Path
    sources: list[Path]
    feedback: Feedback
    retries: int
    backoff: float
    timeout: float
    trust_records: bool = True
    _indexes: dict[Path, dict[str, list[Path]]] = field(default_factory=dict)
    # Files the deeper mirror search found under the right name but refused, with the reason (for the error).
    rejected: list[str] = field(default_factory=list)

    def recorded(self, name: str) -> str | None:
        return recorded_hashes(self.dest).get(name) if self.trust_records else None

    # ---- offline mirrors -----------------------------------------------------------------------------
    def exact_locations(self, name: str) -> Iterator[Path]:
        for src in self.sources:
            yield src / name
            for folder in (self.spec.name, *self.spec.mirror_dirs):
                yield src / folder / name

    def search(self, name: str) -> list[Path]:
        """Files called `name` at most `_MIRROR_DEPTH` folders below any source (index built once per source)."""
        hits: list[Path] = []
        for src in self.sources:
            if src not in self._indexes:
                self._indexes[src] = _index_tree(src, _MIRROR_DEPTH)
            hits += self._indexes[src].get(name, [])
        return hits


# ---- hashes recorded for unpinned files ---------------------------------------------------------------


def unpinned_names(spec: DatasetSpec) -> list[str]:
    """Names of the raw files (archives and members) whose hash the spec does not pin."""
    names: list[str] = []
    for raw in spec.raw_files:
        if not raw.sha256:
            names.append(raw.name)
        names += [_member_name(member) for member, sha in raw.members.items() if not sha]
    return names


def recorded_hashes(dest: Path) -> dict[str, str]:
    path = Path(dest) / HASHES
    if not path.exists():
        return {}
    try:
        records = json.loads(path.read_text("utf-8"))
        if not isinstance(records, dict) or not all(isinstance(v, str) for v in records.values()):
            raise ValueError("not an object of file names and hashes")
    except (ValueError, UnicodeDecodeError) as exc:
        raise HBenchError(f"{path} is not a valid hash record ({exc}); delete it to record hashes anew") from None
    return records


def record_hashes(spec: DatasetSpec, dest: Path, known: dict[str, str]) -> None:
    """Record the SHA-256 of every unpinned raw file in `dest` (`known`: hashes already computed, by name).

    Called only after the files parsed and their statistics matched the published ones.
    """
    records = recorded_hashes(dest)
    updated = dict(records)
    for name in unpinned_names(spec):
        path = Path(dest) / name
        if path.is_file():
            updated[name] = known.get(name) or sha256_file(path)
    if updated != records:
        write_json(Path(dest) / HASHES, updated)


def unverified_names(spec: DatasetSpec, dest: Path) -> list[str]:
    """Unpinned raw files in `dest` whose hash has not been recorded (never verified)."""
    records = recorded_hashes(dest)
    return [name for name in unpinned_names(spec) if name not in records and (Path(dest) / name).is_file()]


def forget(spec: DatasetSpec, dest: Path, *, recorded_too: bool) -> list[str]:
    """Delete the unverified unpinned raw files from `dest` (with `recorded_too`, the recorded ones and their
    records as well): what a failed verification leaves. Returns the names deleted."""
    records = recorded_hashes(dest)
    deleted = []
    for name in unpinned_names(spec):
        if recorded_too or name not in records:
            path = Path(dest) / name
            if path.is_file():
                path.unlink()
                deleted.append(name)
            records.pop(name, None)
    if recorded_too and (Path(dest) / HASHES).exists():
        write_json(Path(dest) / HASHES, records)
    return deleted


def _index_tree(root: Path, depth: int) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    if not root.is_dir():
        return index
    base = len(root.parts)
    for folder, dirs, files in os.walk(root):
        level = len(Path(folder).parts) - base
        if level >= depth:
            dirs.clear()
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            index.setdefault(name, []).append(Path(folder) / name)
    return index


# ---- one plain file --------------------------------------------------------------------------------


def _expected(name: str, pinned: str | None, ctx: _Context) -> tuple[str | None, str]:
    """The hash `name` must have and where that requirement comes from (for error messages)."""
    if pinned:
        return pinned.lower(), "pinned"
    recorded = ctx.recorded(name)
    return recorded, (f"recorded in {ctx.dest / HASHES} when it was verified; if the source changed, "
                      f"`hbench prepare {ctx.spec.name} --force` verifies it anew")


def _fetch_file(raw: RawFile, ctx: _Context) -> Path:
    target = ctx.dest / raw.name
    expected, _ = _expected(raw.name, raw.sha256, ctx)
    if _cached_ok(target, expected, ctx):
        return target
    found = _find_in_mirrors(raw.name, raw.sha256, ctx)
    if found is not None:
        _copy_into(found, target, ctx)
    else:
        _download(raw, target, ctx)
    return target


def _cached_ok(target: Path, expected: str | None, ctx: _Context) -> bool:
    """Whether `target` already holds the right bytes; a damaged copy is reported and fetched again."""
    if not target.is_file():
        return False
    try:
        verify_file(target, expected)
    except HBenchError as exc:
        ctx.feedback.warn(f"{exc}; fetching it again")
        return False
    return True


def _find_in_mirrors(name: str, pinned: str | None, ctx: _Context) -> Path | None:
    """A mirror copy of `name` whose hash is right, or None.

    A wrong file at an exact location is an error (the user put it there for us); one found by the
    recursive search may be an unrelated file of the same name, so it is skipped. Without any hash to
    check, a recursive hit is trusted only when it is unambiguous.
    """
    expected, origin = _expected(name, pinned, ctx)
    for candidate in ctx.exact_locations(name):
        if not candidate.is_file():
            continue
        if expected is None:
            return candidate
        actual = sha256_file(candidate)
        if actual != expected:
            raise HBenchError(
                f"mirror file {candidate} has SHA-256 {actual[:12]}…, but {name} must have {expected[:12]}… "
                f"({origin}); replace or remove it"
            )
        return candidate
    hits = ctx.search(name)
    if expected is not None:
        for hit in hits:
            actual = sha256_file(hit)
            if actual == expected:
                return hit
            ctx.rejected.append(f"{hit} (SHA-256 {actual[:12]}…, expected {expected[:12]}…)")
        return None
    if len(hits) > 1 and len({sha256_file(hit) for hit in hits}) > 1:
        ctx.feedback.warn(f"{name}: several different mirror files ({', '.join(map(str, hits))}); ignoring them")
        ctx.rejected += [f"{hit} (one of {len(hits)} different files of that name)" for hit in hits]
        return None
    return hits[0] if hits else None


def _copy_into(source: Path, target: Path, ctx: _Context) -> str:
    """Copy a mirror file into the cache atomically and return its hash.

    Mirrors may be read-only or on removable media, so the cache never refers to them in place.
    """
    ctx.feedback.log(f"{target.name}: copying from {source}")
    with open(source, "rb") as src, atomic_path(target) as tmp:
        return _copy_stream(src, tmp)


# ---- archives --------------------------------------------------------------------------------------


def _member_name(member: str) -> str:
    """The flat file name a member is stored under; it never contains a folder, so it cannot escape `dest`."""
    name = PurePosixPath(member).name
    if name in ("", ".", ".."):
        raise HBenchError(f"archive member {member!r} has no file name")
    return name


def _fetch_archive_members(raw: RawFile, ctx: _Context) -> dict[str, Path]:
    members = {_member_name(m): (m, sha.lower() if sha else None) for m, sha in raw.members.items()}
    paths = {name: ctx.dest / name for name in members}
    missing = {
        name: (member, pinned)
        for name, (member, pinned) in members.items()
        if not _cached_ok(paths[name], _expected(name, pinned, ctx)[0], ctx)
    }
    if not missing:
        return paths
    archive = _local_archive(raw, ctx)
    if archive is None and _copy_extracted_members(missing, ctx):
        return paths
    if archive is None:
        archive = ctx.dest / raw.name
        _download(raw, archive, ctx)
    for member, pinned in missing.values():
        _extract_member(archive, member, pinned, ctx)
    return paths


def _local_archive(raw: RawFile, ctx: _Context) -> Path | None:
    """The archive in the cache or a mirror (read in place: only the needed members are extracted)."""
    cached = ctx.dest / raw.name
    if _cached_ok(cached, _expected(raw.name, raw.sha256, ctx)[0], ctx):
        return cached
    return _find_in_mirrors(raw.name, raw.sha256, ctx)


def _copy_extracted_members(missing: dict[str, tuple[str, str | None]], ctx: _Context) -> bool:
    """Copy the members from a mirror that holds them extracted; False (nothing copied) unless all are there."""
    found = {name: _find_in_mirrors(name, pinned, ctx) for name, (_, pinned) in missing.items()}
    if any(path is None for path in found.values()):
        return False
    for name, path in found.items():
        assert path is not None
        _copy_into(path, ctx.dest / name, ctx)
    return True


def _extract_member(archive: Path, member: str, pinned: str | None, ctx: _Context) -> None:
    """Extract one member to `dest/<base name>`, verifying its hash before it becomes visible."""
    name = _member_name(member)
    expected, origin = _expected(name, pinned, ctx)
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, atomic_path(ctx.dest / name) as tmp:
            digest = _copy_stream(src, tmp)
            if expected is not None and digest != expected:
                raise HBenchError(
                    f"{member} in {archive} has SHA-256 {digest[:12]}…, expected {expected[:12]}… ({origin}); "
                    "the archive is corrupt or the source changed"
                )
    except KeyError as exc:
        raise HBenchError(f"{archive} has no member {member}; the archive is not the expected one") from exc
    except zipfile.BadZipFile as exc:
        raise HBenchError(f"{archive} is not a valid zip archive ({exc}); delete it and fetch it again") from exc


def _copy_stream(src: BinaryIO | IO[bytes], target: Path) -> str:
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


# ---- download --------------------------------------------------------------------------------------


class _Retry(Exception):
    """A transient failure: the transfer is tried again (resuming from the .part file)."""


def _supply_hint(raw: RawFile, ctx: _Context) -> str:
    """What to do without a download, naming the mirror files that were found and refused."""
    if not ctx.sources:
        return f"put {raw.name} in a directory and pass --source DIR (or set HBENCH_MIRROR)"
    searched = ", ".join(map(str, ctx.sources))
    refused = f"; refused: {'; '.join(ctx.rejected)}" if ctx.rejected else ""
    return f"no usable {raw.name} in the --source folders ({searched}){refused}"


def _download(raw: RawFile, target: Path, ctx: _Context) -> str:
    """Download `raw.url` to `target` through `<target>.part`, resuming and retrying; return the verified hash."""
    part = target.with_name(target.name + ".part")
    for attempt in range(ctx.retries + 1):
        try:
            _transfer(raw, part, ctx)
            break
        except _Retry as exc:
            if attempt == ctx.retries:
                raise HBenchError(f"cannot download {raw.name} from {raw.url} ({exc}); {_supply_hint(raw, ctx)}") from exc
            delay = ctx.backoff * 2**attempt
            ctx.feedback.warn(f"{raw.name}: {exc}; retrying in {delay:.1f} s")
            time.sleep(delay)
    expected, origin = _expected(raw.name, raw.sha256, ctx)
    actual = sha256_file(part)
    if expected is not None and actual != expected:
        part.unlink()
        raise HBenchError(
            f"{raw.name} from {raw.url} has SHA-256 {actual[:12]}…, expected {expected[:12]}… ({origin}): "
            "the download is corrupt or the source changed"
        )
    os.replace(part, target)
    return actual


def _transfer(raw: RawFile, part: Path, ctx: _Context) -> None:
    """One HTTP request appending to `part` from its current size; raises `_Retry` on transient failures."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(raw.url, headers=headers), timeout=ctx.timeout) as resp:
            offset = _resume_offset(resp, part, offset)
            length = resp.headers.get("Content-Length")
            _stream(resp, part, offset, int(length) if length is not None else None, raw.name, ctx)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            _range_not_satisfiable(exc, part, offset)
        elif exc.code in _RETRYABLE_STATUS:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from exc
        else:
            raise HBenchError(
                f"cannot download {raw.name} from {raw.url} (HTTP {exc.code} {exc.reason}); {_supply_hint(raw, ctx)}"
            ) from exc
    except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException, ssl.SSLError) as exc:
        if _unreachable(exc):  # retrying cannot help: fail at once instead of stalling through the retries
            raise HBenchError(
                f"cannot download {raw.name} from {raw.url} ({_describe(exc)}); {_supply_hint(raw, ctx)}"
            ) from None
        raise _Retry(_describe(exc)) from exc


def _unreachable(exc: Exception) -> bool:
    """A host that does not resolve or refuses the connection: not an interrupted transfer."""
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, socket.gaierror | ConnectionRefusedError) or isinstance(exc, ConnectionRefusedError)


def _describe(exc: Exception) -> str:
    """A one-line reason: URLError wraps the socket error in `reason`; some errors have no message."""
    text = " ".join(str(getattr(exc, "reason", None) or exc).split())
    return text or type(exc).__name__


def _resume_offset(resp: http.client.HTTPResponse, part: Path, offset: int) -> int:
    """Where the response body starts: servers that ignore Range answer 200 with the whole file."""
    if offset and resp.status == 206:
        match = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            return offset
        part.unlink(missing_ok=True)
        raise _Retry("the server resumed at an unexpected offset; restarting")
    return 0


def _range_not_satisfiable(exc: urllib.error.HTTPError, part: Path, offset: int) -> None:
    """A 416 means the .part is already complete (then the hash decides) or longer than the file (restart)."""
    match = re.match(r"bytes \*/(\d+)", exc.headers.get("Content-Range", "") if exc.headers else "")
    if match and int(match.group(1)) == offset:
        return
    part.unlink(missing_ok=True)
    raise _Retry("the partial download does not fit the file on the server; restarting") from exc


def _stream(
    resp: http.client.HTTPResponse, part: Path, offset: int, length: int | None, name: str, ctx: _Context
) -> None:
    received = 0
    total = offset + length if length is not None else None
    # Without a known size the byte-count column cannot render a total; the plain counter can.
    with (
        ctx.feedback.progress(name, total, unit="bytes" if total is not None else "") as task,
        open(part, "ab" if offset else "wb") as out,
    ):
        task.advance(offset)
        while chunk := resp.read(_CHUNK):
            out.write(chunk)
            received += len(chunk)
            task.advance(len(chunk))
    # http.client reports a connection closed early as a short body, not as an error.
    if length is not None and received < length:
        raise _Retry(f"connection closed after {offset + received:,} of {total:,} bytes")
