"""Atomic file writes and content hashes.

Every artifact hbench writes goes through here: data is written to a temporary sibling and renamed into
place (`os.replace` is atomic on POSIX within one file system), so an interrupted process never leaves a
half-written result where a reader would take it for a finished one.

A write that fails is reported for the path the user asked for, never for the temporary file behind it: a
full disk, a quota, a read-only file system or a missing permission is an `EnvironmentFailure` ("cannot write
PATH: No space left on device"), a target under a file or onto a directory an `HBenchError`. Folders a
failed write created on the way are removed again, so a refused write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hbench.errors import EnvironmentFailure, HBenchError

_CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it; restored at once
    os.umask(mask)
    return mask


# What the machine refuses, not what the user typed: exit 1 with the reason (`EnvironmentFailure`).
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                                 errno.EIO})
# A target the user named wrongly: a path under a file, a file onto a directory, a name too long.
_PATH_ERRNOS = frozenset({errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENAMETOOLONG})


def _blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` that is not a directory (a write below it cannot succeed)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_target(target: Path | str, *, directory: bool = False) -> None:
    """Refuse, before any work, a target that cannot be written: under a file, a file where a directory is
    wanted (or the reverse), or below a folder this process may not write (a read-only file system)."""
    target = Path(target)
    blocker = _blocking_file(target)
    if blocker is not None:
        raise HBenchError(f"cannot write {target}: {blocker} is a file, not a directory")
    if directory and target.exists() and not target.is_dir():
        raise HBenchError(f"cannot write {target}: it is a file, not a directory")
    if not directory and target.is_dir():
        raise HBenchError(f"cannot write {target}: it is a directory")
    existing = next((p for p in (target, *target.parents) if p.exists()), None)
    # The temporary sibling is created in the parent, and missing folders in the nearest existing one.
    folder = target.parent if existing == target else existing
    if folder is not None and not os.access(folder, os.W_OK | os.X_OK):
        raise EnvironmentFailure(f"cannot write {target}: {folder} is not writable "
                                 f"({os.strerror(errno.EROFS) if _read_only(folder) else os.strerror(errno.EACCES)})")


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): call it a permission problem
        return False


def write_failure(target: Path, error: OSError) -> HBenchError | None:
    """`error` of a write to `target` as the one-line error it deserves, or None for anything else (a bug)."""
    # The system's own words for the errno: pyarrow's strerror is a paragraph ("Error writing bytes to file...").
    reason = os.strerror(error.errno) if error.errno else str(error)
    if error.errno in _ENVIRONMENT_ERRNOS:
        return EnvironmentFailure(f"cannot write {target}: {reason}")
    if error.errno in _PATH_ERRNOS:
        blocker = _blocking_file(target)
        if blocker is not None:
            return HBenchError(f"cannot write {target}: {blocker} is a file, not a directory")
        if error.errno == errno.EISDIR or (error.errno == errno.EEXIST and target.is_dir()):
            return HBenchError(f"cannot write {target}: it is a directory")
        return HBenchError(f"cannot write {target}: {reason}")
    return None


def _concerns(error: OSError, *paths: Path) -> bool:
    """Whether `error` came from writing one of `paths` (a write error names no file), not from reading
    some other file inside the `with` block."""
    return error.filename is None or str(error.filename) in {str(p) for p in paths}


def _make_parents(target: Path) -> list[Path]:
    """Create the folders missing above `target`; returns them, deepest first, to remove on failure."""
    missing = []
    for parent in target.parents:
        if parent.exists() or parent.is_symlink():
            break
        missing.append(parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_folders(missing)
        failure = write_failure(target, error)
        if failure is None:
            raise
        raise failure from error
    return missing


def _remove_folders(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; only empty ones, so nothing another writer put there is lost
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    An OSError of the write (disk full, read-only...) is raised as `write_failure` names it, for `target`.
    """
    target = Path(target)
    created = _make_parents(target)
    tmp: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        # mkstemp creates the file private (0600); a result is an ordinary file, readable as the umask allows
        # (others read results on shared storage, e.g. a Ray cluster's driver).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as error:
        _remove_temporary(tmp)
        _remove_folders(created)
        failure = write_failure(target, error) if _concerns(error, *([tmp] if tmp else []), target) else None
        if failure is None:
            raise
        raise failure from error
    except BaseException:
        _remove_temporary(tmp)
        _remove_folders(created)
        raise
    _remove_temporary(tmp)  # gone after the rename; a leftover would be a bug, but never a visible one


def _remove_temporary(tmp: Path | None) -> None:
    if tmp is None:
        return
    with contextlib.suppress(OSError):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(target: Path | str) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; it replaces `target` only if the block succeeds.

    Errors as for `atomic_path`, for `target`; a file already at `target` is refused (never replaced).
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise HBenchError(f"cannot write {target}: it is a file, not a directory")
    created = _make_parents(target)
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700, as for files above
        if target.exists():
            # Two renames keep the window without any complete directory as short as possible; the old folder
            # goes back if the second rename fails, so `target` is never left missing.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as error:
        _remove_temporary(tmp)
        _remove_folders(created)
        # Files written inside the temporary directory name themselves; the user asked for `target`.
        inside = error.filename is not None and tmp is not None and str(error.filename).startswith(str(tmp))
        failure = write_failure(target, error) if inside or _concerns(error, *([tmp] if tmp else []), target) else None
        if failure is None:
            raise
        raise failure from error
    except HBenchError as error:
        _remove_temporary(tmp)
        _remove_folders(created)
        # A file written atomically inside names its temporary folder; the user knows it as `target`.
        if tmp is not None and str(tmp) in str(error):
            error.args = (str(error).replace(str(tmp), str(target)),)  # keeps the type and its other fields
        raise
    except BaseException:
        _remove_temporary(tmp)
        _remove_folders(created)
        raise


def remove_stale_temporaries(folder: Path | str, older_than: float, name: str | None = None) -> list[Path]:
    """Delete what interrupted atomic writes left in `folder` (`.NAME.XXXX.tmp`, `.NAME.old`; only those of
    target `name` when given) that is older than `older_than` (a time.time() value).

    Call it holding the lock of every writer of those targets, with the time the lock was acquired: anything
    older belongs to a process that died.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.glob(f".{'*' if name is None else glob.escape(name)}.*")):
        if not (path.name.endswith(".tmp") or path.name.endswith(".old")):
            continue
        try:
            if path.lstat().st_mtime >= older_than:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def write_bytes(target: Path | str, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path | str, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: Path | str, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths appear in configs and statistics; store them as plain JSON values.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def damaged_file(path: Path | str, reason: str) -> HBenchError:
    """The error for a file hbench wrote that no longer reads as it wrote it: every damaged-file message
    (config.json, tune.json, a TPE record, ...) says the same thing, and what to do."""
    return HBenchError(f"{path} is damaged ({reason}); delete it or run the command that writes it again")


def read_json(path: Path | str, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object hbench wrote, or an HBenchError saying the file is damaged (not text, not JSON, not an
    object, or missing one of the `required` keys)."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise damaged_file(path, reason) from None
    except OSError as exc:
        raise HBenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    missing = [key for key in required if not isinstance(data, dict) or key not in data]
    if not isinstance(data, dict) or missing:
        what = f"lacks {', '.join(missing)}" if isinstance(data, dict) else "is not a JSON object"
        raise damaged_file(path, f"it {what}")
    return data


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-able object in canonical form (sorted keys): the identity of a config."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
