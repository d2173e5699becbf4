"""How fast each family's no-grad passes run on this machine at each pass size: the closing refit's
frozen pass (milliseconds per window, as the fit's own price times it) and sampling (milliseconds
per sequence), the evidence for train/losses.py's CPU_PASS_TOKENS.

    python bench/pass_size.py                      # S. suis, the four neural families
    python bench/pass_size.py --families masked --rows 64 128 1872

Each family first trains briefly (``--budget``, default 40 s) on the genome through the CLI, so its
networks carry the n-gram/context table the closing fit refits (genomes above 1 Mb). The frozen
pass is timed by the family's ClosingFit.price on ``--windows`` training windows, with
CPU_PASS_TOKENS set so that a pass holds each of ``--rows`` windows; sampling writes ``--sample_n``
sequences with passes of CPU_PASS_TOKENS and with the wide PASS_TOKENS. Run it alone: it times.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types

from common import ROOT, table, write_json  # common puts the repository root on sys.path

import torch  # noqa: E402

from genomes import GENOMES  # noqa: E402
from train import losses  # noqa: E402
from train.engine import load_ensemble  # noqa: E402
from utils.sequences import load_sequences  # noqa: E402

LENGTH = 70


def checkpoint(family: str, data: str, budget: float, work) -> str:
    """A briefly trained checkpoint of the family on the genome (trained once, then reused)."""
    ck = work / family / "ck" / f"{family}_last.pt"
    if not ck.exists():
        subprocess.run([sys.executable, str(ROOT / "main.py"), "--mode", "train", "--model", family, "--data", data,
                        "--budget", str(budget), "--run_dir", str(work / family / "run"),
                        "--checkpoint_dir", str(ck.parent), "--overwrite"], check=True, cwd=ROOT)
    return str(ck)


def frozen_ms(ens, x, rows: int) -> float | None:
    """Milliseconds per window of the closing fit's frozen pass in passes of ``rows`` windows (the
    fit's own price, median of its repeats); None for a family without a closing fit."""
    fit = ens.family.closing_fit(ens.cfg)
    if fit is None or fit.price is None:
        return None
    losses.CPU_PASS_TOKENS = rows * x.shape[1]
    nets = ens.members[0].eval()
    _, _, seconds = fit.price(nets, x, None, types.SimpleNamespace(device=ens.device))
    return 1e3 * seconds


def sample_ms(ens, n: int, tokens: int) -> float:
    losses.CPU_PASS_TOKENS = tokens
    t = time.time()
    ens.sample(n, LENGTH, seed=1)
    return 1e3 * (time.time() - t) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genome", default="s_suis", choices=sorted(GENOMES))
    ap.add_argument("--families", nargs="+", default=["stacked", "gumbel", "seqgan", "masked"])
    ap.add_argument("--budget", type=float, default=40.0, help="seconds of training before the timings")
    ap.add_argument("--windows", type=int, default=2048, help="training windows the frozen pass reads (at least the widest --rows)")
    ap.add_argument("--rows", type=int, nargs="+", default=[32, 64, 117, 256, 1872],
                    help="windows per pass (117: CPU_PASS_TOKENS at 70 bp; 1,872: PASS_TOKENS)")
    ap.add_argument("--sample_n", type=int, default=1024)
    args = ap.parse_args()
    default_tokens = losses.CPU_PASS_TOKENS
    work = ROOT / "bench" / "results" / "work" / "pass_size" / args.genome
    data = str(ROOT / GENOMES[args.genome])
    x = torch.from_numpy(load_sequences(data, LENGTH, val_fraction=0.2, seed=0).train[: args.windows])
    rows = []
    for f in args.families:
        ens, _ = load_ensemble(checkpoint(f, data, args.budget, work), "cpu")
        row = {"family": f}
        for r in args.rows:
            ms = frozen_ms(ens, x, r)
            if ms is not None:
                row[f"frozen_ms_{r}"] = ms
        row["sample_ms_cpu"] = sample_ms(ens, args.sample_n, default_tokens)
        row["sample_ms_wide"] = sample_ms(ens, args.sample_n, losses.PASS_TOKENS)
        losses.CPU_PASS_TOKENS = default_tokens
        rows.append(row)
        print(table([row], list(row)), flush=True)
    cols = ["family", *(f"frozen_ms_{r}" for r in args.rows), "sample_ms_cpu", "sample_ms_wide"]
    print(table(rows, cols))
    write_json(f"pass_size_{args.genome}", {"seed": 1, "length": LENGTH, "windows": args.windows,
                                            "cpu_pass_tokens": default_tokens, "pass_tokens": losses.PASS_TOKENS,
                                            "sample_n": args.sample_n, "train_budget": args.budget, "rows": rows})


if __name__ == "__main__":
    main()
