"""The one exception type of FaceAlbedo: a stable code, an actionable message, a CLI exit status.

Scripts rely on the exit statuses, so codes are only ever added, never renumbered.
"""
from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """Every failure a user can meet, with its process exit status (see README)."""

    INTERNAL = 1
    USAGE = 2
    UNREADABLE_IMAGE = 10
    NO_FACE = 11
    MULTIPLE_FACES = 12
    FACE_TOO_SMALL = 13
    FIT_FAILED = 14
    ASSETS_MISSING = 20
    ASSETS_CORRUPT = 21
    DOWNLOAD_FAILED = 22
    OUTPUT_NOT_WRITABLE = 30
    OUTPUT_EXISTS = 31
    DISK_FULL = 32
    DEVICE_UNAVAILABLE = 40
    CANCELLED = 130  # the shell's status for Ctrl-C (128 + SIGINT)

    @property
    def exit_status(self) -> int:
        return self.value


class FaceAlbedoError(Exception):
    """A failure the user can act on: `code` says what kind, `message` says what to do."""

    def __init__(self, code: ErrorCode | str, message: str):
        self.code = code if isinstance(code, ErrorCode) else ErrorCode[code]
        self.message = message
        super().__init__(f"{self.code.name}: {message}")

    @property
    def exit_status(self) -> int:
        return self.code.exit_status
