"""Checkpoints: written atomically (temp file + rename), read with torch.load(weights_only=True).

A checkpoint is a plain dict of tensors and Python primitives:
  format, family, config (nested dict), alphabet, members (state dicts), optimizers, schedulers,
  epoch, steps (one count per member), best_score, epochs_since_best, rng (torch / numpy / per-member
  generator states), stats.

Format 2 (the engine redesign): GAN warm-up is model.warmup_steps, steps are counted per member and
pruned options are gone. Format 1 checkpoints are refused with a one-line message: retrain.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from utils.errors import CheckpointError
from utils.sequences import normalize_path

FORMAT = 2


def save(path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path, map_location="cpu") -> dict:
    path = Path(normalize_path(path))
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError,
            ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable dnagan checkpoint ({first[:160]})") from None
    if not isinstance(ckpt, dict) or "family" not in ckpt or "members" not in ckpt:
        raise CheckpointError(f"{path}: not a dnagan checkpoint (no family/members)")
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {ckpt.get('format')!r} (an earlier dnagan); this version "
                              f"reads format {FORMAT}: retrain, or generate with the version that wrote it")
    return ckpt
