"""Writing output files whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kctl.errors import KctlError


def write_whole(output: str, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``output`` through a temporary file beside it: never half a file.

    Args:
        output: The file to write.
        text: Its content.
        mode: Permission bits less the umask (e.g. 0o755); ``None`` keeps mkstemp's 0600.
    """
    target = Path(output)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise KctlError(f"cannot write {output}: {err.strerror}") from None
    try:
        if mode is not None:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, mode & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, target)
    except BaseException as err:
        os.unlink(tmp)
        if isinstance(err, OSError):
            raise KctlError(f"cannot write {output}: {err.strerror}") from None
        raise
