"""How much of a C2ST figure is the judge learning the held-out set itself? The judge's real side is
overlapping windows of the held-out blocks (every --stride bases: a window shares 60 of 70 bases
with its neighbour). With random folds, the neighbour of most scored windows was in the judge's
training fold, so on a small held-out set the judge can learn those bases and tell any other
sequence, real or generated, from them. With grouped folds all windows of one held-out block are
in one fold (analysis.judge.c2st, real_groups).

For each genome, the sets of bench/genomes.py's baseline rows (real training windows, the floor;
markov-3 and markov-5 through the CLI) are judged against the same held-out windows both ways,
with several seeds (each seed a new subsample, fold split and judge initialisation):

    python bench/judge_folds.py [--genomes lambda human_stretches s_suis] [--seeds 3]
    python bench/judge_folds.py --genomes lambda --folds random grouped span350 \
        --sets floor markov-5 "bench/results/work/genomes/{genome}/markov-5 phased/gen.fasta"

--folds spanS groups the windows by stretches of S bases, leaving out those that cross a stretch's
end (analysis.judge.heldout_windows span): folds that share no base, with more groups than blocks.

The judge's power is the gap from the floor to markov-5; it is only worth reading where it is
larger than the spread over seeds.
"""
import argparse
import logging
import time
from pathlib import Path

import numpy as np

from common import ROOT, table, write_json
from genomes import GENOMES, trained_set, work

from analysis.judge import c2st, heldout_windows
from utils.sequences import load_sequences, read_sequences


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--genomes", nargs="+", default=["lambda", "human_stretches", "s_suis"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--tag", default="", help="rows go to judge_folds_<tag>.json")
    ap.add_argument("--block_size", type=int, nargs="+", default=[10_000],
                    help="data.block_size of the split (bases; made smaller for short genomes, at least 20 blocks a "
                         "record): each size a split of its own, the markov sets trained on its training blocks")
    ap.add_argument("--stride", type=int, default=10, help="step of the overlapping held-out windows (genomes.py's)")
    ap.add_argument("--folds", nargs="+", default=["random", "grouped"],
                    help="random; grouped (a held-out block a group); spanS (stretches of S bases a group, windows "
                         "crossing a stretch's end left out: analysis.judge.heldout_windows span)")
    ap.add_argument("--sets", nargs="+", default=["floor", "markov-3", "markov-5"],
                    help="floor, markov-3, markov-5, or a FASTA path (a generated set, e.g. a stored genomes.py run's)")
    args = ap.parse_args()
    for mode in args.folds:
        if mode not in ("random", "grouped") and not (mode.startswith("span") and mode[4:].isdigit()):
            ap.error(f"--folds {mode}: random, grouped or spanS (S bases, e.g. span350)")
    logging.basicConfig(level=logging.WARNING)
    name = "judge_folds" + (f"_{args.tag}" if args.tag else "")
    rows = []
    for g, block in ((g, b) for g in args.genomes for b in args.block_size):
        data = load_sequences(ROOT / GENOMES[g], 70, val_fraction=0.2, seed=0, block_size=block)
        sets = {}
        for label in args.sets:
            if label == "floor":
                sets[label] = None  # the real training windows, grouped below as the held-out ones
            elif label.startswith("markov-"):
                k = int(label.split("-")[1])
                sets[label] = trained_set("markov", GENOMES[g], 0, args.n, Path(work) / g / f"markov{k}_block{block}",
                                          ("--order", k, "--set", f"data.block_size={block}"))[0]
            else:
                sets[Path(label).parent.name or label] = read_sequences(label.replace("{genome}", g))
        for label, x in sets.items():
            for mode in args.folds:
                span = int(mode[4:]) if mode.startswith("span") else None
                ref, ref_groups = heldout_windows(data.val_segments, 70, args.stride, groups=True, span=span)
                if x is None:  # the floor
                    gen, gen_groups = heldout_windows(data.train_segments, 70, 70, groups=True, span=span)
                else:
                    gen, gen_groups = x, None  # generated sequences are independent draws
                t = time.perf_counter()
                res = [c2st(ref, gen, seed=s, max_n=args.n,
                            real_groups=ref_groups if mode != "random" else None,
                            gen_groups=gen_groups if mode != "random" else None) for s in range(args.seeds)]
                aucs = [r["auc"] for r in res]
                rows.append({"genome": g, "block_size": block, "set": label, "folds": mode, "n": res[0]["n"],
                             "held_out_blocks": len(data.val_segments), "auc_mean": float(np.mean(aucs)),
                             "auc_sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else float("nan"),
                             "auc_seeds": aucs, "ci_seed0": [res[0]["lo"], res[0]["hi"]],
                             "seconds_per_seed": (time.perf_counter() - t) / args.seeds})
                print(table(rows[-1:], ["genome", "block_size", "set", "folds", "n", "auc_mean", "auc_sd", "seconds_per_seed"]),
                      flush=True)
                write_json(name, {"seed": 0, "stride": args.stride, "seeds": args.seeds, "rows": rows})
    for g, block in ((g, b) for g in args.genomes for b in args.block_size):  # the judge's power, each way
        for mode in args.folds:
            by = {r["set"]: r for r in rows if r["genome"] == g and r.get("block_size") == block and r["folds"] == mode}
            if not {"floor", "markov-5"} <= set(by):
                continue
            rows.append({"genome": g, "block_size": block, "set": "markov-5 - floor", "folds": mode,
                         "auc_mean": by["markov-5"]["auc_mean"] - by["floor"]["auc_mean"],
                         "auc_sd": float(np.hypot(by["markov-5"]["auc_sd"], by["floor"]["auc_sd"]))})
    print(table(rows, ["genome", "block_size", "set", "folds", "n", "held_out_blocks", "auc_mean", "auc_sd", "seconds_per_seed"]))
    print(f"wrote {write_json(name, {'seed': 0, 'stride': args.stride, 'seeds': args.seeds, 'rows': rows})}")


if __name__ == "__main__":
    main()
