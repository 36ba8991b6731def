"""Reading and writing a run's files safely.

Reading: :func:`read_regular` reads a regular file of bounded size, or says in one sentence what
the file is instead (a FIFO would block the reader forever, a link to /dev/zero never ends).

Writing: write-then-rename, so that a kill at any moment leaves the old file or the new one, never half of one.

The temporary file is created with O_EXCL | O_NOFOLLOW under a random name in the target's
own directory (``.<stem>.tmp<pid>-<random><suffix>``): nothing planted there in advance can
redirect the write, and the suffix stays last so that writers choosing a format by the
extension (ffmpeg for .mp4) still see it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from pathlib import Path

# the names atomic_path uses: .<stem>.tmp<pid>-<hex><suffix> (and the older .<name>.tmp<pid>)
_TEMP = re.compile(r"^\..+\.tmp(\d+)(?:-[0-9a-f]{16}(?:\.[A-Za-z0-9]+)?)?$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """A fresh, unguessable temporary name beside ``path`` that keeps its suffix last."""
    return path.with_name(f".{path.stem}.tmp{os.getpid()}-{secrets.token_hex(8)}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a new, empty temporary file beside ``path``; on success fsync it and rename it over ``path``.

    The temporary is created exclusively (never an existing file or a link); the rename replaces a
    link at ``path`` itself rather than writing through it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    created = False
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        created = True
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            # a full disk often shows only here (delayed allocation), before the rename
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        # name the file the user asked for, not the temporary one
        e.filename = str(path)
        raise
    finally:
        if created:
            with contextlib.suppress(OSError):
                tmp.unlink()


def kind_of(mode: int) -> str:
    """What a file of st_mode ``mode`` is, for a sentence: 'a regular file', 'a FIFO', 'a directory', ..."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_regular(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else a ValueError naming it and
    ``what`` it should be ("a vdm checkpoint sidecar").

    The kind is checked on the open descriptor before a byte is read, and the open itself never waits
    (O_NONBLOCK: a FIFO's open would wait for a writer). At most limit + 1 bytes are read, so a file
    that grows past the limit while being read is refused too, and memory stays bounded.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError(f"{path} cannot be read as {what} ({e.strerror or type(e).__name__}).") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is {kind_of(st.st_mode)}, not {what}.")
        if st.st_size > limit:
            raise ValueError(f"{path} is not {what} (larger than {limit:,} bytes).")
        os.set_blocking(fd, True)
        chunks, n = [], 0
        while n <= limit and (chunk := os.read(fd, limit + 1 - n)):
            chunks.append(chunk)
            n += len(chunk)
        if n > limit:
            raise ValueError(f"{path} is not {what} (larger than {limit:,} bytes).")
        return b"".join(chunks)
    except OSError as e:
        raise ValueError(f"{path} cannot be read as {what} ({e.strerror or type(e).__name__}).") from None
    finally:
        os.close(fd)


def refuse_hard_link(fd: int, path: str | os.PathLike) -> None:
    """ValueError when the open file ``fd`` (at ``path``) has more than one name: st_nlink > 1.

    A file written in place (appended to, or rewritten through its descriptor) changes under every
    name it has, so a hard link planted where a run's file belongs would carry the writes to a file
    outside the run. O_NOFOLLOW sees symbolic links only; the link count sees these. (A file replaced
    by rename, as atomic_path does, drops the link instead and needs no check.)
    """
    n = os.fstat(fd).st_nlink
    if n > 1:
        raise ValueError(f"{path} is a hard link ({n} names for one file, perhaps one outside the run), so writing it "
                         "would change them all; replace it with a copy of its own and try again.")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in ``directory`` (their pid is gone)."""
    removed = []
    d = Path(directory)
    if d.is_symlink() or not d.is_dir():
        return removed
    for p in d.iterdir():
        m = _TEMP.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_json(path: str | os.PathLike, obj) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
