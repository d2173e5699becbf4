"""Does picking <model>_best.pt on the held-out blocks the judge scores flatter the judged rows?

    python bench/selection_lean.py --genome lambda --family seqgan --budget 300 \
        --train_args "--set train.ema=0" --tag noema_s88

`<model>_best.pt` is the epoch of lowest NLL on the held-out windows, and bench/genomes.py judges
the generated set against those same blocks: the pick has seen the answer. This measures how much
that matters, on one training run, without retraining:

1. `main.py --mode train` as bench/genomes.py does (its own process, the family's defaults plus
   --train_args), with `--set train.save_every=1`: a checkpoint of every epoch.
2. The held-out segments are dealt alternately into two halves: S (selection) and T (test).
   Every epoch's checkpoint gets the family's own held-out NLL (models' evaluate, the figure the
   engine picks by) on S's windows, on T's, and on all of them; the last must equal metrics.csv's
   val_nll for that epoch (checked: the checkpoints are what the engine scored).
3. Three picks: by all blocks (what the engine did: best.pt), by S only and by T only. Each
   distinct pick's generated set (--n, one generation seed for all) is set against S and against T:
   4-mer JS and GC against every window of the half, the judge's C2ST against overlapping windows
   every --ref_stride bases (as bench/genomes.py), one judge seed per half, so picks differ only
   by their epoch. On lambda a half is 2 blocks (4.7 kb): its judge has about 470 windows a side
   and, as docs/benchmarks.md "The judge's folds" shows, little power there; NLL and JS are the
   figures to read.

Two differences, each the mean over the halves (leans() says how): the optimism, the pick by a
half minus the pick by the other half, both judged on the first (the leak of picking on the judged
blocks, alone); and best.pt's pick minus the pick by the other half (what a half-split protocol
would change, the leak mixed with best.pt's pick having seen twice the windows). Each in the
half's NLL (free of the judge's noise), C2ST and 4-mer JS; negative: the judged figure flattered.
Where two picks are one epoch they differ by nothing. The engine picks on the networks before any
closing fit (an n-gram table refit), and so do these picks; epoch checkpoints hold no fit, so where
best.pt kept one (best_is_pick false in the JSON) the judged sets are the picks before their fit.
`--summary` prints one line per JSON (no torch work).
Writes bench/results/selection_lean_<genome>_<family>_<tag>.json.
"""
import argparse
import json
import logging
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from common import ROOT, judged_split, table, write_json
from genomes import GENOMES, cli

from analysis import metrics as M
from analysis.judge import heldout_windows
from train.checkpoint import load as load_checkpoint
from train.engine import load_ensemble, read_metrics

work = ROOT / "bench" / "results" / "work" / "selection_lean"


def windows(segments, seq_len: int) -> np.ndarray:
    """Non-overlapping windows of held-out segments, as the data pipeline cuts them (data.val)."""
    return heldout_windows(segments, seq_len, seq_len)


def nll(ens, x: np.ndarray) -> float:
    """The family's own held-out NLL (its evaluate, the engine's selection figure) on windows x."""
    if len(ens.members) != 1:
        raise SystemExit(f"{ens.family.name}: {len(ens.members)} members; this bench scores one network")
    nets = ens.members[0]
    ctx = SimpleNamespace(val=torch.from_numpy(np.ascontiguousarray(x)), val_labels=None, device=ens.device,
                          cfg=ens.cfg)
    out = ens.family.evaluate(nets, ctx)
    if "val_nll" not in out:
        raise SystemExit(f"{ens.family.name}: evaluate gives no val_nll; its best.pt is not picked by NLL")
    return float(out["val_nll"])


FIGURES = {"nll": "nll_{h}", "c2st": "c2st_auc_vs_{h}", "js_4mer": "js_4mer_vs_{h}"}


def leans(picks: list[dict]) -> dict:
    """Two differences from the three picks' rows (pick "all", "S", "T"), each the mean over the
    two halves H (other half O); negative = the pick that saw H looks better on H:
    - optimism: pick by H minus pick by O, both judged on H. The two picks saw the same number of
      held-out windows, so this is the selection's leak alone (at half the windows best.pt saw).
    - all_vs_other: pick by all blocks (best.pt) minus pick by O, judged on H: what an honest
      half-split protocol would report differently, mixing the leak with best.pt's pick having
      seen twice the windows (a less noisy pick, which helps without any leak)."""
    row = {r["pick"].split()[0]: r for r in picks}  # "all", "S", "T"
    out = {}
    for name, mine in (("optimism", None), ("all_vs_other", "all")):
        out[name] = {m: float(np.mean([row[mine or h][f.format(h=h)] - row[o][f.format(h=h)]
                                       for h, o in (("S", "T"), ("T", "S"))])) for m, f in FIGURES.items()}
    return out


def summary() -> None:
    """One line per selection_lean_*.json: the run, its picks' epochs and the two differences."""
    rows = []
    for path in sorted((ROOT / "bench" / "results").glob("selection_lean_*.json")):
        d = json.loads(path.read_text())
        ep = {r["pick"].split()[0]: r["epoch"] for r in d["picks"]}
        lean = leans(d["picks"])
        rows.append({"run": path.stem[len("selection_lean_"):], "epochs": len(d["epochs"]),
                     "picks all/S/T": f"{ep['all']}/{ep['S']}/{ep['T']}",
                     **{f"{k}_{m}": v for k in lean for m, v in lean[k].items()}})
    print(table(rows, ["run", "epochs", "picks all/S/T", "optimism_nll", "optimism_c2st", "optimism_js_4mer",
                       "all_vs_other_nll", "all_vs_other_c2st", "all_vs_other_js_4mer"]))


def score_epochs(wd: Path, family: str, win: dict) -> list[dict]:
    """Every epoch checkpoint's held-out NLL on each set of windows in ``win`` ("S", "T", "all"),
    checked against metrics.csv's val_nll on all of them: the checkpoints are what the engine
    scored (the last epoch's file, written again after a kept closing fit, is marked "refitted")."""
    metrics = read_metrics(wd / "run" / "metrics.csv")
    fitted = any(r.get("refit_iters") not in (None, "") for r in metrics)  # a closing fit ran at the end
    logged = {int(r["epoch"]): float(r["val_nll"]) for r in metrics if r.get("val_nll") not in (None, "")}
    rows = []
    for ep in sorted(logged):
        ens, _ = load_ensemble(wd / "ck" / f"{family}_epoch{ep}.pt", "cpu")
        row = {"epoch": ep, "logged_all": logged[ep], **{f"nll_{k}": nll(ens, w) for k, w in win.items()}}
        if abs(row["nll_all"] - row["logged_all"]) > 1e-4 and fitted and ep == max(logged):
            row["refitted"] = True  # the last epoch's file was written again after a kept closing fit
        elif abs(row["nll_all"] - row["logged_all"]) > 1e-4:
            raise SystemExit(f"epoch {ep}: NLL on all held-out windows {row['nll_all']:.5f} != metrics.csv's "
                             f"{row['logged_all']:.5f}: the checkpoint is not what the engine scored")
        rows.append(row)
    return rows


def judge_picks(wd: Path, args, epochs: list[int], segs: dict, refs: dict) -> dict:
    """(epoch, half) -> the metric row of that epoch's generated set against that half: 4-mer JS and
    GC against every window of the half, the judge against ``refs`` (every --ref_stride bases: at
    stride 1 it learns the held-out bases themselves, AUC 0.98-1.00 on lambda's halves for any set).
    One generation seed for every pick, one judge seed and size for every set against a half."""
    every = {k: heldout_windows(segs[k], 70, 1) for k in refs}
    judged = {}
    for ep in epochs:
        ens, _ = load_ensemble(wd / "ck" / f"{args.family}_epoch{ep}.pt", "cpu")
        gen = ens.sample(args.n, 70, seed=args.seed).numpy()
        for k, ref in refs.items():
            judged[ep, k] = {**M.compare(gen, every[k], ks=(4,), seed=args.seed, c2st=False),
                             **M.c2st_row(ref, gen, seed=args.seed, max_n=min(args.n, ref.shape[0]))}
    return judged


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--genome", default="lambda", choices=list(GENOMES))
    ap.add_argument("--family", default="seqgan")
    ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--train_args", default="")
    ap.add_argument("--tag", default="")
    ap.add_argument("--n", type=int, default=5000, help="sequences generated per pick; the judge takes min(n, T windows)")
    ap.add_argument("--ref_stride", type=int, default=10, help="the judge's real windows every this many bases "
                    "(as bench/genomes.py); k-mer spectra take every window")
    ap.add_argument("--seed", type=int, default=0, help="data split, generation and judge seed")
    ap.add_argument("--reuse", action="store_true", help="score an earlier run's checkpoints, do not train")
    ap.add_argument("--summary", action="store_true", help="print every selection_lean_*.json's picks and "
                    "differences, run nothing")
    args = ap.parse_args()
    if args.summary:
        return summary()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(args.seed)
    name = f"selection_lean_{args.genome}_{args.family}" + (f"_{args.tag}" if args.tag else "")
    wd = work / args.genome / (args.family + (f"_{args.tag}" if args.tag else ""))
    if not args.reuse:
        shutil.rmtree(wd, ignore_errors=True)
        wd.mkdir(parents=True)
        secs = cli("--mode", "train", "--model", args.family, "--data", ROOT / GENOMES[args.genome], "--budget",
                   args.budget, "--run_dir", "run", "--checkpoint_dir", "ck", "--overwrite",
                   *shlex.split(args.train_args), "--set", "train.save_every=1", cwd=wd)
    else:
        secs = float("nan")
    if not (wd / "run" / "metrics.csv").exists():
        raise SystemExit(f"{wd}: no training run to score (run without --reuse first)")
    data, _, _ = judged_split(ROOT / GENOMES[args.genome], 70, args.seed, args.ref_stride)  # the benchmarks' one split
    segs = {"S": data.val_segments[0::2], "T": data.val_segments[1::2]}
    win = {"S": windows(segs["S"], 70), "T": windows(segs["T"], 70)}
    win["all"] = windows(data.val_segments, 70)
    if win["all"].shape[0] != data.val.shape[0]:
        raise SystemExit(f"held-out windows {win['all'].shape[0]} != the pipeline's {data.val.shape[0]}")
    rows = score_epochs(wd, args.family, win)
    # the engine picked on the networks before any closing fit: so do the three picks (a last epoch
    # whose file holds the fitted networks is left out of them)
    cands = [r for r in rows if not r.get("refitted")]
    picks = {k: min(cands, key=lambda r: r[f"nll_{k}"])["epoch"] for k in ("all", "S", "T")}
    best = load_checkpoint(wd / "ck" / f"{args.family}_best.pt")
    if int(best["epoch"]) != picks["all"]:
        raise SystemExit(f"best.pt is epoch {best['epoch']}, the all-blocks pick {picks['all']}")
    picked = load_checkpoint(wd / "ck" / f"{args.family}_epoch{picks['all']}.pt")
    # False: best.pt kept a closing fit, so the sets judged here are the picks before their fit
    best_is_pick = all(torch.equal(a[k], b[k]) for a, b in zip(best["members"], picked["members"]) for k in a)
    refs = {k: heldout_windows(segs[k], 70, args.ref_stride) for k in ("S", "T")}
    judged = judge_picks(wd, args, sorted(set(picks.values())), segs, refs)
    by_epoch = {r["epoch"]: r for r in rows}
    out = []
    for k, label in (("all", "all blocks (best.pt)"), ("S", "S only"), ("T", "T only")):
        ep = picks[k]
        out.append({"pick": label, "epoch": ep, "nll_S": by_epoch[ep]["nll_S"], "nll_T": by_epoch[ep]["nll_T"],
                    "gc": judged[ep, "S"]["gc_mean"],
                    **{f"{m}_vs_{h}": judged[ep, h][m] for h in ("S", "T")
                       for m in ("js_4mer", "c2st_auc", "c2st_lo", "c2st_hi")}})
    lean = leans(out)
    if not best_is_pick:
        print("note: best.pt kept a closing fit; the sets judged here are the picked epochs before their fit")
    print(f"{args.genome} {args.family} {args.train_args}: {len(rows)} epochs, windows S {win['S'].shape[0]} "
          f"T {win['T'].shape[0]}, judged against {refs['S'].shape[0]} S / {refs['T'].shape[0]} T windows; "
          f"GC of S {M.gc_content(refs['S']).mean():.3f}, T {M.gc_content(refs['T']).mean():.3f}")
    print(table(out, ["pick", "epoch", "nll_S", "nll_T", "gc", "c2st_auc_vs_S", "c2st_auc_vs_T",
                      "js_4mer_vs_S", "js_4mer_vs_T"]))
    print(table([{"measure": k, **v} for k, v in lean.items()], ["measure", "nll", "c2st", "js_4mer"]))
    write_json(name, {"seed": args.seed, "genome": args.genome, "family": args.family, "budget": args.budget,
                      "train_args": args.train_args, "train_s": secs, "n": args.n, "ref_stride": args.ref_stride,
                      "windows": {k: int(w.shape[0]) for k, w in win.items()},
                      "n_ref": {k: int(r.shape[0]) for k, r in refs.items()},
                      "gc_halves": {k: float(M.gc_content(r).mean()) for k, r in refs.items()},
                      "best_is_pick": best_is_pick, "picks": out, "lean": lean, "epochs": rows})


if __name__ == "__main__":
    main()
