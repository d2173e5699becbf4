"""The boundary every command-line script runs inside: one line and an exit code for what the user
can act on, never a traceback for it; a bug in our code is still a traceback.

- DnaganError (bad flag, file, config, checkpoint): ``error: ...`` and exit 2.
- OSError (a read or write the system refused: read-only folder, full disk, a directory where a
  file was meant): ``error: PATH: REASON`` and exit 2. Writers write temporaries and rename them only
  when everything succeeded, so nothing already written is replaced when this happens.
- SIGINT and SIGTERM: the step under way is abandoned (a checkpoint write under way finishes first),
  the temporaries are removed, and the resume command names the real last checkpoint; exit 130 or
  143 (128 + the signal's number).
"""
from __future__ import annotations

import contextlib
import signal
import sys

from utils.errors import DnaganError


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_state = {"defer": 0, "pending": None, "resume": None}


def _on_signal(signum, frame):
    if _state["defer"]:
        _state["pending"] = signum  # raised when the critical section ends
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def critical():
    """Signals that arrive inside are held until it ends (a checkpoint set written together)."""
    _state["defer"] += 1
    try:
        yield
    finally:
        _state["defer"] -= 1
        if not _state["defer"] and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            raise Interrupted(signum)


def resume_hint(command: str | None) -> None:
    """What to run to continue after an interruption (the engine sets it when last.pt is written)."""
    _state["resume"] = command


def one_line(text: str) -> str:
    """A message as one printable line: newlines folded, control and undecodable characters escaped."""
    text = " ".join(str(text).split("\n"))
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def describe_oserror(exc: OSError) -> str:
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{path}: {reason}" if path is not None else f"{reason}"


def run(fn, *args) -> int:
    """Call fn(*args) inside the boundary; returns the exit code."""
    for stream in (sys.stdout, sys.stderr):  # a path with undecodable bytes still prints
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with contextlib.suppress(ValueError):  # not in the main thread (tests calling main() from a thread)
        for s in old:
            signal.signal(s, _on_signal)
    _state.update(defer=0, pending=None, resume=None)
    try:
        return fn(*args)
    except DnaganError as exc:
        if not getattr(exc, "quiet", False):  # under torchrun an agreed error is printed by rank 0 only
            print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {one_line(describe_oserror(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        hint = _state["resume"]
        tail = f"; resume with: {hint}" if hint else "; no checkpoint was written yet"
        print(f"interrupted by {signal.Signals(signum).name}{tail}", file=sys.stderr)
        return 128 + int(signum)
    finally:
        with contextlib.suppress(ValueError):
            for s, h in old.items():
                signal.signal(s, h)
