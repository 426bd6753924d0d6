"""Write a file or folder beside its target, then rename it into place: a reader (or a resumed run)
sees the old content or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Every temporary name starts with this, so a folder's leftovers from a killed process are easy to spot.
TEMP_PREFIX = ".tmp-"


def publish(temp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move a finished `temp` file or folder onto `target` in one rename (same filesystem), replacing
    what is there. A folder being replaced is removed first: a rename cannot replace a non-empty one."""
    target = Path(target)
    if Path(temp).is_dir() and target.is_dir():
        shutil.rmtree(target)
    os.replace(temp, target)


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target` to write; it replaces `target` when the block ends without
    an error and is deleted otherwise. The temporary name ends with the target's suffix, so writers that
    add a missing extension (numpy's savez) write where they are told."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f"{TEMP_PREFIX}{target.stem}.", suffix=target.suffix
    )
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        publish(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
