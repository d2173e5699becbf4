"""Does a refactor change training? Train every family for a fixed number of steps on E. coli 536 in
this tree and in another checkout (e.g. `git worktree add /tmp/old <commit>`), and compare the final
weights bit for bit, and the per-epoch validation scores.

    python bench/engine_equivalence.py --old /tmp/old

Each run is fixed in steps, not in seconds, so the comparison is exact; renamed options are given
in each tree's own spelling (the redesign renamed stacked's model.mle_warmup and gumbel's
train.mle_epochs to model.warmup_steps).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, table, write_json

COMMON = ["data.max_sequences=4000", "train.eval_samples=50", "train.seed=0", "train.save_every=0",
          "train.sample_every=0"]
SEQGAN = ["model.pre_epochs=2", "model.dis_pre_epochs=1", "model.total_batch=4", "model.rounds_per_epoch=2",
          "train.steps_per_epoch=10", "model.pg_batch=8", "model.rollout_num=4"]
# name: (family, sets for the other tree, sets for this tree)
CASES = {
    "stacked (MLE, n-gram refit)": ("stacked", ["train.epochs=3", "train.steps_per_epoch=20"], None),
    "stacked (adversarial)": ("stacked", ["train.epochs=2", "train.steps_per_epoch=12", "model.adv_weight=0.1",
                                          "model.ngram_refit=0", "model.mle_warmup=0"],
                              ["train.epochs=2", "train.steps_per_epoch=12", "model.adv_weight=0.1",
                               "model.ngram_refit=0", "model.warmup_steps=0"]),
    "gumbel (warm-up, then adversarial)": ("gumbel", ["train.epochs=4", "train.steps_per_epoch=20", "model.adv_every=2",
                                                      "train.mle_epochs=2"],
                                           ["train.epochs=4", "train.steps_per_epoch=20", "model.adv_every=2",
                                            "model.warmup_steps=40"]),
    "seqgan (every phase)": ("seqgan", SEQGAN, None),
    "masked": ("masked", ["train.epochs=2", "train.steps_per_epoch=20"], None),
    "markov": ("markov", ["train.epochs=2"], None),
}

CHILD = r"""
import sys, os, logging, torch
root, family, out, data, work = sys.argv[1:6]
sys.path.insert(0, root); os.chdir(root)
logging.basicConfig(level=logging.WARNING)
from models.registry import get_family
from train.engine import train
from utils.config import parse_set, resolve
cfg = resolve(family, get_family(family).Config, {"data": {"path": data},
              "train": {"checkpoint_dir": work + "/ck", "run_dir": work + "/run"}}, parse_set(sys.argv[6:]))
res = train(cfg, overwrite=True)  # a rerun replaces its own earlier checkpoints
torch.save({"sd": res.ensemble.members[0].state_dict(), "scores": [r["val_score"] for r in res.history]}, out)
"""


def run(tree: Path, family: str, sets: list, data: str, work: Path) -> dict:
    import torch

    out = work / "out.pt"
    subprocess.run([sys.executable, "-c", CHILD, str(tree), family, str(out), data, str(work), *COMMON, *sets],
                   check=True, capture_output=True, text=True)
    return torch.load(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="the other checkout")
    ap.add_argument("--data", default=str(ROOT / "data/ecoli_536.fasta.gz"))
    args = ap.parse_args()
    import torch

    old_commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.old, capture_output=True, text=True).stdout.strip()
    rows = []
    for name, (family, old_sets, new_sets) in CASES.items():
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            old = run(Path(args.old), family, old_sets, args.data, Path(a))
            new = run(ROOT, family, new_sets or old_sets, args.data, Path(b))
        shared = set(old["sd"]) & set(new["sd"])
        rows.append({"case": name, "tensors_compared": len(shared),
                     "identical": all(torch.equal(old["sd"][k], new["sd"][k]) for k in shared),
                     "only_old": len(set(old["sd"]) - shared), "only_new": len(set(new["sd"]) - shared),
                     "val_scores_equal": old["scores"] == new["scores"], "epochs": len(new["scores"])})
        print(rows[-1], flush=True)
    print(table(rows, ["case", "tensors_compared", "identical", "only_old", "only_new", "val_scores_equal", "epochs"]))
    print(f"wrote {write_json('engine_equivalence', {'seed': 0, 'old_commit': old_commit, 'rows': rows})}")


if __name__ == "__main__":
    main()
