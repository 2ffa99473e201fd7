"""Atomic result folders: everything is written into a hidden temporary folder beside the target and
renamed into place at the end, so a failed, cancelled (Ctrl-C, SIGTERM) or killed run never leaves a
half-written result, and an existing result is never half-overwritten.

Temporary folders are named `.<name>.tmp-<host>-<pid>-<random>`; a SIGKILLed run cannot clean up after
itself, so `remove_stale_temp_folders()` deletes the ones whose process on this host is gone.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Iterator

from inference_core.errors import ErrorCode, FaceAlbedoError

TEMP_MARKER = ".tmp-"
"""Part of every temporary folder's name (after the leading dot and the result name)."""
OLD_MARKER = ".old-"
"""Part of the name an existing result is moved to while it is being replaced (--overwrite)."""


def _host() -> str:
    return socket.gethostname().replace("-", "_") or "host"


def is_temporary(path: Path) -> bool:
    """Whether `path` is a working folder of this module (never a finished result)."""
    return path.name.startswith(".") and (TEMP_MARKER in path.name or OLD_MARKER in path.name)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_folders(out_root: Path) -> list[Path]:
    """Delete temporary folders in `out_root` left by killed runs on this host; returns what was deleted."""
    removed = []
    if not out_root.is_dir():
        return removed
    host = _host()
    for path in out_root.iterdir():
        if not (path.is_dir() and is_temporary(path)):
            continue
        tail = path.name.rsplit(TEMP_MARKER if TEMP_MARKER in path.name else OLD_MARKER, 1)[1]
        parts = tail.split("-")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue  # another machine's run (shared folder): not ours to judge
        if not _process_alive(int(parts[1])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def output_error(error: OSError, where: Path) -> FaceAlbedoError:
    """The FaceAlbedoError for an OSError met while writing a result (disk full, no permission, ...)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return FaceAlbedoError(ErrorCode.DISK_FULL,
                               f"no space left while writing {where}; free some space or choose another --out")
    return FaceAlbedoError(ErrorCode.OUTPUT_NOT_WRITABLE,
                           f"cannot write {where} ({error.strerror or error}); choose a writable --out folder")


def prepare_out_root(out_root: Path) -> Path:
    """Create `out_root` if needed and check that it is writable (before any expensive work)."""
    out_root = Path(out_root)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        probe = out_root / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        probe.mkdir()
        probe.rmdir()
    except OSError as error:
        raise output_error(error, out_root) from error
    return out_root


def check_target_free(target: Path, overwrite: bool) -> None:
    """Raise OUTPUT_EXISTS when `target` holds a result and overwriting was not asked for."""
    if target.exists() and not overwrite:
        raise FaceAlbedoError(ErrorCode.OUTPUT_EXISTS,
                              f"{target} already exists; pass --overwrite to replace it or choose another --out")


@contextlib.contextmanager
def atomic_folder(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes `target`, on any failure it disappears.

    With `overwrite`, an existing `target` is swapped out only after the new one is complete (write new,
    rename old aside, rename new into place, delete old), so either the old or the new result is there.
    OSErrors become DISK_FULL / OUTPUT_NOT_WRITABLE; KeyboardInterrupt and SystemExit pass through
    after the clean-up.
    """
    target = Path(target)
    check_target_free(target, overwrite)
    suffix = f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temp = target.with_name(f".{target.name}{TEMP_MARKER}{suffix}")
    try:
        temp.mkdir(parents=True)
    except OSError as error:
        raise output_error(error, target.parent) from error
    try:
        yield temp
        _swap_into_place(temp, target, overwrite, suffix)
    except OSError as error:
        shutil.rmtree(temp, ignore_errors=True)
        raise output_error(error, target) from error
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _swap_into_place(temp: Path, target: Path, overwrite: bool, suffix: str) -> None:
    """Rename `temp` to `target`; an existing target is moved aside first and deleted last."""
    old = None
    if target.exists():
        check_target_free(target, overwrite)
        old = target.with_name(f".{target.name}{OLD_MARKER}{suffix}")
        os.replace(target, old)
    try:
        os.replace(temp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)  # put the previous result back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
