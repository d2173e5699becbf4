"""Quality harness: train a family on E. coli 536 training blocks, generate, judge on held-out blocks.

    python bench/quality.py --model markov --budget 600 [--set model.order=4 ...]

Rows: real training windows (the floor), markov-3, markov-5, uniform random, and the family. Every
row is scored by analysis.metrics.compare against the held-out validation windows: 4-mer and 6-mer
JS, mean GC and |GC - held-out GC|, unique fraction, exact training copies (either strand), C2ST
AUC (0.5 = indistinguishable), near copies (>= 90% identity to a training window), the codon
periodicity gap and longest-ORF KS (analysis.structure), the Fréchet distance of learned embeddings
(analysis.frechet; the floor row's is its real-vs-real floor), with --motifs GROUP the Pearson r of
JASPAR motif hit rates, plus training time and generation throughput. Above 70 bp the judge's folds
keep each held-out block's windows together (--grouped; "c2st_grouped" in each row). At --seq_len
other than 70 the JSON name carries the length (quality_<model>_L500.json). With --pair_mle a GAN family's run
also scores its own <model>_mle.pt (the engine's snapshot before the first adversarial epoch: the
same pretraining, likelihood only) after the family's closing fit, as the final row had its own:
the paired adversarial-vs-MLE comparison from one run. When the run's <model>_best.pt (what users
generate from; picked by held-out NLL in every family) is an earlier epoch than the final state,
it is scored too, as its own row before the final one. The JSON
keeps the run's peak memory (the engine's per-epoch peak, and this process's peak resident size).
"""
import argparse
import logging
import resource
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from common import ROOT, argv_flag, grouped_folds, judged_split, table, write_json

from analysis import metrics as M
from models.registry import get_family
from train.engine import train
from utils.config import parse_set, resolve

COLS = ["set", "js_4mer", "js_6mer", "gc_mean", "gc_abs_diff", "unique_fraction", "exact_copies", "near_copies",
        "period3_gap", "orf_ks", "motif_pearson_r", "fd", "c2st_auc", "c2st_lo", "c2st_hi", "train_s",
        "gen_seq_per_s"]


def fit(family: str, data, args, sets, budget: float, tmp: str):
    fam = get_family(family)
    over = {"data": {"path": args.data, "seq_len": args.seq_len},
            "train": {"seed": args.seed, "time_budget": budget, "checkpoint_dir": f"{tmp}/ckpt",
                      "run_dir": f"{tmp}/run_{family}_{time.strftime('%H%M%S')}", "sample_every": 0,
                      "save_every": 0}}
    cfg = resolve(family, fam.Config, over, parse_set(sets))
    res = train(cfg, data=data, overwrite=True)  # a rerun replaces its own earlier checkpoints
    t = time.perf_counter()
    gen = res.ensemble.sample(args.n, args.seq_len, temperature=args.temperature, seed=args.seed + 1).numpy()
    gen_rate = args.n / (time.perf_counter() - t)
    return gen, res.seconds, gen_rate, res


def from_checkpoint(args, data, path, closing: bool = False):
    """Generate from a checkpoint trained on the same split (bench/masked_accuracy.py trains one).
    closing: first give it the family's closing fit (as the engine does at the end of a run), so an
    epoch snapshot is scored as the model a run stopped there would have left."""
    from train.engine import read_metrics, load_ensemble

    ens, ck = load_ensemble(path, device="cpu")
    if ck["family"] != args.model or Path(str(ck["stats"].get("source"))).name != Path(data.source).name:
        raise SystemExit(f"{path}: a {ck['family']} checkpoint of {ck['stats'].get('source')}, "
                         f"not {args.model} on {data.source}")
    fit = ens.family.closing_fit(ens.cfg) if closing else None
    if fit is not None:
        import torch

        ctx = SimpleNamespace(val=torch.from_numpy(np.ascontiguousarray(data.val)), val_labels=None,
                              device=torch.device("cpu"), cfg=ens.cfg, deadline=None)  # no budget: to convergence
        for nets in ens.members:
            fit.undo(nets)
            print(f"closing fit of {path}: {fit.fit(nets, torch.from_numpy(data.train), None, ctx)}")
    t = time.perf_counter()
    gen = ens.sample(args.n, args.seq_len, temperature=args.temperature, seed=args.seed + 1).numpy()
    rate = args.n / (time.perf_counter() - t)
    # the run's history up to this checkpoint's epoch (an epoch snapshot of a longer run)
    hist = [r for r in read_metrics(Path(ck["run_dir"]) / "metrics.csv") if r["epoch"] <= ck["epoch"]]
    res = SimpleNamespace(history=hist, epochs_done=ck["epoch"])
    return gen, (hist[-1]["elapsed_s"] if hist else float("nan")), rate, res


def best_row(args, data, res, label: str, sets: dict) -> None:
    """The run's <model>_best.pt (picked by the family's select_by, closing fit included: the file
    users generate from) as its own row when it is an earlier epoch than the final state's."""
    from train.checkpoint import load as load_checkpoint

    if res.best_path is None or not Path(res.best_path).exists():
        return
    epoch = load_checkpoint(res.best_path, map_location="cpu")["epoch"]
    if epoch == res.epochs_done:
        print(f"{res.best_path}: the final epoch's state; no separate row")
        return
    b_gen, b_secs, b_rate, _ = from_checkpoint(args, data, str(res.best_path))
    sets[f"{label} best.pt (epoch {epoch} of {res.epochs_done})"] = (b_gen, b_secs, b_rate)


def baselines(args) -> list[dict]:
    """The real/markov/uniform rows of an earlier run with the same protocol (they are deterministic
    given data, seed, length, n and stride), so a family's run scores only its own rows."""
    import json

    old = json.loads((ROOT / "bench" / "results" / f"{args.baselines}.json").read_text())
    argv = old["argv"]

    def flag(name, default):
        return argv_flag(argv, name, default)

    same = (flag("--seq_len", 70), flag("--n", 20000), flag("--ref_stride", 35), flag("--seed", 0),
            old["rows"][0].get("c2st_grouped", False), flag("--data", str(ROOT / "data/ecoli_536.fasta.gz")))
    mine = (args.seq_len, args.n, args.ref_stride, args.seed, args.grouped, args.data)
    if same[:5] != mine[:5] or Path(same[5]).name != Path(mine[5]).name:
        raise SystemExit(f"--baselines {args.baselines}: run with (seq_len, n, ref_stride, seed, grouped folds, data) "
                         f"{same}, not {mine}")
    return [r for r in old["rows"][:4]]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="markov")
    ap.add_argument("--budget", type=float, default=600, help="training seconds for the family")
    ap.add_argument("--data", default=str(ROOT / "data/ecoli_536.fasta.gz"))
    ap.add_argument("--seq_len", type=int, default=70)
    ap.add_argument("--n", type=int, default=20000, help="generated sequences per row (and real ones per side)")
    ap.add_argument("--ref_stride", type=int, default=35,
                    help="step of the overlapping held-out windows the rows are judged against")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--tag", default="", help="suffix for the JSON name (e.g. an ablation)")
    ap.add_argument("--motifs", default=None, metavar="GROUP", help="JASPAR group to scan (analysis.motifs)")
    ap.add_argument("--baselines", default=None, metavar="NAME",
                    help="take the real, markov and uniform rows from bench/results/NAME.json (same data, seed, "
                         "--seq_len, --n and --ref_stride) instead of scoring them again")
    ap.add_argument("--pair_mle", action="store_true",
                    help="also score the run's <model>_mle.pt (the state before its adversarial part)")
    ap.add_argument("--closing", action="store_true",
                    help="with --checkpoint: give it the family's closing fit first (an epoch snapshot)")
    ap.add_argument("--grouped", action=argparse.BooleanOptionalAction, default=None,
                    help="the judge's folds keep each held-out block's overlapping windows together (default: "
                         "at --seq_len above 70; at 500 bp a window shares 465 bases with each neighbour, and a "
                         "judge with random folds learns the held-out bases themselves)")
    ap.add_argument("--checkpoint", default=None,
                    help="score this trained checkpoint of --model (same data and seed) instead of training")
    args = ap.parse_args()
    args.grouped = grouped_folds(args.seq_len, args.grouped)
    return args


def main():
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    data, val, val_groups = judged_split(args.data, args.seq_len, args.seed, args.ref_stride)
    print(f"{args.data}: {data.train.shape[0]} training windows, {val.shape[0]} held-out windows of "
          f"{args.seq_len} bp (every {args.ref_stride} bases); held-out GC {M.gc_content(val).mean():.4f}")
    tmp = str(ROOT / "bench" / "results" / "work")
    rng = np.random.default_rng(args.seed)
    base_rows = baselines(args) if args.baselines else []
    sets = {}
    if not base_rows:
        sets["real (train windows)"] = (data.train[rng.choice(data.train.shape[0], args.n, replace=False)], 0.0, float("nan"))
        for order in (3, 5):
            gen, secs, rate, _ = fit("markov", data, args, [f"model.order={order}"], 0, tmp)
            sets[f"markov-{order}"] = (gen, secs, rate)
        sets["uniform random"] = (rng.integers(0, 4, (args.n, args.seq_len)).astype(np.uint8), 0.0, float("nan"))
    if args.checkpoint:
        gen, secs, rate, res = from_checkpoint(args, data, args.checkpoint, args.closing)
    else:
        gen, secs, rate, res = fit(args.model, data, args, args.set, args.budget, tmp)
    label = args.model + (f" {' '.join(args.set)}" if args.set else "")
    mle = Path(tmp) / "ckpt" / f"{args.model}_mle.pt"
    if args.pair_mle and not args.checkpoint:
        if not mle.exists():
            raise SystemExit(f"{mle}: no snapshot (the run never reached an adversarial epoch)")
        m_gen, m_secs, m_rate, m_res = from_checkpoint(args, data, str(mle), closing=True)  # as the final row got its own
        sets[f"{label} MLE snapshot (epoch {m_res.epochs_done} of {res.epochs_done}) + closing fit"] = (m_gen, m_secs, m_rate)
    if not args.checkpoint:
        best_row(args, data, res, label, sets)
    sets[label] = (gen, secs, rate)
    rows = list(base_rows)
    motif_ref = None
    if args.motifs:
        from analysis.motifs import MotifReference

        motif_ref = MotifReference(val, group=args.motifs, seed=args.seed)
    for name, (gen, secs, rate) in sets.items():
        row = {"set": name, **M.compare(gen, val, train=data.train, train_segments=data.train_segments, ks=(4, 6),
                                        c2st=True, frechet=True, seed=args.seed,
                                        ref_groups=val_groups if args.grouped else None), "c2st_grouped": args.grouped}
        if motif_ref is not None:
            row.update(motif_ref.row(gen)[0])
        row.update(train_s=secs, gen_seq_per_s=rate)
        rows.append(row)
    # every row's sequences, for rescoring without training again (e.g. motifs: bench/quality_rescore.py)
    name = f"quality_{args.model}{f'_L{args.seq_len}' if args.seq_len != 70 else ''}{('_' + args.tag) if args.tag else ''}"
    np.savez_compressed(Path(tmp) / f"{name}_sets.npz", **{f"row{i}": g for i, (g, _, _) in enumerate(sets.values())},
                        names=np.array(list(sets)))
    print(table(rows, COLS))
    fam_row = rows[-1]
    uni, m3 = rows[3], rows[1]
    mems = [r.get("peak_memory_mb") for r in res.history if r.get("peak_memory_mb") == r.get("peak_memory_mb")]
    checks = {
        "gc_within_0.02": fam_row["gc_abs_diff"] <= 0.02,
        "unique_ge_0.95": fam_row["unique_fraction"] >= 0.95,
        "zero_copies": fam_row["exact_copies"] == 0,
        "js4_5x_below_uniform": fam_row["js_4mer"] * 5 <= uni["js_4mer"],
        "js4_le_markov3": fam_row["js_4mer"] <= m3["js_4mer"],
        "c2st_le_markov5": fam_row["c2st_auc"] <= rows[2]["c2st_auc"],
    }
    print("checks: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in checks.items()))
    hist = res.history
    out = write_json(name, {"seed": args.seed,
        "command": "python bench/quality.py " + shlex.join(sys.argv[1:]),  # as typed: every flag, --seed and --tag too
        "rows": rows, "checks": checks, "epochs_done": res.epochs_done,
        "baselines_from": args.baselines,
        "peak_train_memory_mb": max(map(float, mems), default=None),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lengths": [r.get("length") for r in hist],
        "min_unique_during_training": min((r["unique_fraction"] for r in hist), default=None),
        "train_seq_per_s": float(np.mean([r["seqs_per_s"] for r in hist])) if hist else None,
    })
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
