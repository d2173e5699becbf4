"""Checkpoints: written atomically (temp file + rename), read with torch.load(weights_only=True).

A checkpoint is a plain dict of tensors and Python primitives:
  format, family, config (nested dict), alphabet, members (state dicts), optimizers, schedulers,
  epoch, steps (one count per member), best_score, epochs_since_best, rng (torch / numpy / per-member
  generator states), stats, run_dir, and the provenance `version` (the toolkit's) and `data_sha256`
  (the training file's hash; `--mode gen --data` warns when another file is given).

Written with mode 0644 like every other output; temporaries a killed process left behind are
removed when the next run into the same folder starts.

Format 2 (the engine redesign): GAN warm-up is model.warmup_steps, steps are counted per member and
pruned options are gone. Format 1 checkpoints are refused with a one-line message: retrain.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from utils.errors import CheckpointError
from utils.outputs import write_bytes
from utils.sequences import normalize_path

FORMAT = 2


def save(path, payload: dict) -> Path:
    """Serialise in memory, write a temporary beside ``path`` (mode 0644 under the usual umask),
    fsync, rename. A full disk or a read-only folder is an OSError naming ``path``; the earlier
    file stays and no temporary is left."""
    save_all([path], payload)
    return Path(path)


def save_all(paths, payload: dict) -> None:
    """The same payload to several files (last, best, epoch-N), serialised once."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    for path in paths:
        write_bytes(path, buf.getbuffer())


def orphan_pattern(name: str) -> str:
    """Temporaries ``save`` makes for a checkpoint called ``name`` (removed when a run starts)."""
    return f".{name}.*.tmp"


def load(path, map_location="cpu") -> dict:
    path = Path(normalize_path(path))
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    if not zipfile.is_zipfile(path):  # dnagan writes PyTorch's zip format only; legacy pickles are not read
        raise CheckpointError(f"{path}: not a dnagan checkpoint (not a PyTorch zip file)")
    try:
        with warnings.catch_warnings():  # torch's advice about unsafe loading is never ours to pass on
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise  # the system refused the read: the boundary names the path and the reason
    except pickle.UnpicklingError:
        # weights_only refused an object: never unpickled, and never worth loading unsafely
        raise CheckpointError(f"{path}: refused: it holds Python objects beyond tensors and plain values, "
                              "which a dnagan checkpoint never does") from None
    except Exception:  # noqa: BLE001 - an untrusted file: whatever torch's reader trips on means "not ours"
        raise CheckpointError(f"{path}: not a dnagan checkpoint (unreadable as a PyTorch file)") from None
    if not isinstance(ckpt, dict) or "family" not in ckpt or "members" not in ckpt:
        raise CheckpointError(f"{path}: not a dnagan checkpoint (no family/members)")
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {ckpt.get('format')!r} (an earlier dnagan); this version "
                              f"reads format {FORMAT}: retrain, or generate with the version that wrote it")
    return ckpt


def file_hash(path) -> str | None:
    """sha256 of a data file (what a checkpoint records of its training data); None without one."""
    from utils.sequences import file_sha256

    if isinstance(path, (list, tuple)):  # several files: one hash of their hashes, in order
        import hashlib

        parts = [file_hash(p) for p in path]
        return None if None in parts else hashlib.sha256("".join(parts).encode()).hexdigest()
    path = Path(path)
    if not path.is_file():
        return None
    return file_sha256(path)  # hashed once per process (the data cache hashes the same file)
