"""Helpers shared by benchmarks: a results table on stdout and JSON under bench/results/."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]  # rows may be none
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in cells)])


def provenance(seed) -> dict:
    """What reproduces a figure: the full command line, the seed, the commit (and whether the tree
    had uncommitted changes), torch, the device and the cores."""
    import torch

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"argv": [Path(sys.argv[0]).name, *sys.argv[1:]], "seed": seed, "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "torch": torch.__version__, "device": dev, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}


def argv_flag(argv: list, name: str, default):
    """The value an earlier run's recorded argv gave ``name`` (its type that of ``default``), else default."""
    return type(default)(argv[argv.index(name) + 1]) if name in argv else default


def grouped_folds(seq_len: int, option: bool | None = None) -> bool:
    """Whether the judge's folds keep each held-out block's windows together: ``option`` when given,
    else above 70 bp (the length since whose judge the rows of bench/quality.py and its re-scores group;
    analyze and compare_models follow the same rule: analysis.judge.reference_windows)."""
    from analysis.judge import GROUPED_ABOVE

    return seq_len > GROUPED_ABOVE if option is None else option


def judged_split(data_path, seq_len: int, seed: int, stride: int, **load_kw):
    """The split every quality benchmark trains on and judges against, built in one place: the
    sequences of ``data_path`` in windows of ``seq_len`` with a fifth of the blocks held out (training's
    default ``data.val_fraction``), and the judge's real side, overlapping windows every ``stride``
    bases of the held-out blocks. Returns (data, held-out windows, each window's block); load_kw goes
    to load_sequences (genomes.py's select_apart)."""
    from analysis.judge import heldout_windows
    from utils.sequences import load_sequences

    data = load_sequences(data_path, seq_len, val_fraction=0.2, seed=seed, **load_kw)
    ref, ref_groups = heldout_windows(data.val_segments, seq_len, stride, groups=True)
    return data, ref, ref_groups


def write_json(name: str, payload: dict) -> Path:
    """bench/results/NAME.json: the payload plus provenance; payload["seed"] (required) is the
    bench's --seed or the constant it seeds with (None where nothing is random)."""
    if "seed" not in payload:
        raise ValueError("write_json: the payload must record its seed")
    seed = payload.pop("seed")
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
               "python": platform.python_version(), **provenance(seed), **payload}
    out.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return out
