"""Writing outputs so that a failure replaces nothing: files that belong together (a report's
metrics, text and figures; a FASTA and its .txt twin) are written to temporaries first and renamed
into place only when every one of them was written.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode(path) -> None:
    """mkstemp creates 0600; an output gets the mode any other new file would (0644 under umask 022)."""
    os.chmod(path, 0o666 & ~_umask())


def not_a_directory(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", str(path))


def _probe(folder: Path, named: Path) -> None:
    """Create and remove a file in ``folder``; an OSError naming ``named`` and the reason if not."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror or "cannot write here", str(named)) from None
    os.close(fd)
    os.unlink(probe)


def writable_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and check that files can be created in it, before work starts:
    an OSError naming the folder and the reason if not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(path))
    path.mkdir(parents=True, exist_ok=True)
    _probe(path, path)
    return path


def check_writable(path) -> None:
    """Before work starts: files can be created in folder ``path`` (or, where it does not exist
    yet, in its nearest existing parent), without creating anything that stays. An OSError naming
    ``path`` and the reason if not."""
    path = Path(path)
    probe_in = path
    while not probe_in.exists() and probe_in.parent != probe_in:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{probe_in} is not a directory", str(path))
    _probe(probe_in, path)


def write_bytes(path, data) -> Path:
    """Bytes (a checkpoint, a cache entry) to a temporary beside ``path``, fsynced, renamed into
    place (mode 0644 under the usual umask). A failure (full disk, read-only folder) is an OSError
    naming ``path``; the earlier file stays and no temporary is left."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        file_mode(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror or "cannot write", str(path)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_texts(files: dict) -> None:
    """{path: text}: every text to a temporary beside its path, then all renamed into place. A
    failure leaves the earlier files untouched and no temporaries behind."""
    staged = []
    try:
        for path, text in files.items():
            path = Path(path)
            not_a_directory(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            except OSError as exc:
                raise type(exc)(exc.errno, exc.strerror, str(path)) from None
            staged.append((tmp, path))
            try:
                with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
                    fh.write(text)
            except OSError as exc:
                raise type(exc)(exc.errno, exc.strerror, str(path)) from None
            file_mode(tmp)
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def staged_dir(out):
    """Yields a hidden folder inside ``out`` to write a whole report into; when the block succeeds
    its files are moved into ``out`` (replacing only files of the same names), and when it fails
    ``out`` is as it was. Other files in ``out`` are never touched."""
    out = writable_dir(Path(out))
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    try:
        yield stage
        files = [f for f in sorted(stage.rglob("*")) if f.is_file()]
        for f in files:
            dest = out / f.relative_to(stage)
            not_a_directory(dest)
        for f in files:
            dest = out / f.relative_to(stage)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def remove_orphans(folder, pattern: str) -> list[Path]:
    """Temporaries a killed process left behind (e.g. ``.markov_last.pt.*.tmp``): removed at start."""
    folder = Path(folder)
    gone = []
    if folder.is_dir():
        for p in folder.glob(pattern):
            with contextlib.suppress(OSError):
                p.unlink()
                gone.append(p)
    return gone


def cache_dir(kind: str) -> Path:
    """Where dnagan caches what it can rebuild (encoded windows, trained encoders, motif tables):
    $DNAGAN_CACHE/<kind>, default ~/.cache/dnagan/<kind>."""
    return Path(os.environ.get("DNAGAN_CACHE") or Path.home() / ".cache" / "dnagan") / kind
