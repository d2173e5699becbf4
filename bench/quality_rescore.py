"""Add JASPAR motif figures to a finished quality run, from the sequences it kept.

    python bench/quality_rescore.py quality_gumbel_L500 [--motifs all] [--max_n 2000]

bench/quality.py keeps every row's sequences in bench/results/work/<name>_sets.npz; this scores
them with analysis.motifs (the same code as --motifs) against the held-out windows of the same
split (data, --seq_len, seed and --ref_stride from the JSON), adds the motif_ fields to each row
of bench/results/<name>.json and prints the table. Motif scanning is slow (Biopython's PSSM scan of
every matrix over both strands), so a long run scores its motifs afterwards, alone.
"""
import argparse
import json
import logging
import time

import numpy as np

from common import ROOT, argv_flag, table

from analysis.judge import heldout_windows
from analysis.motifs import MotifReference
from utils.sequences import load_sequences


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help="JSON name under bench/results (without .json)")
    ap.add_argument("--motifs", default="all", metavar="GROUP", help="JASPAR group (analysis.motifs.GROUPS)")
    ap.add_argument("--max_n", type=int, default=2000, help="sequences scanned per side")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    path = ROOT / "bench" / "results" / f"{args.name}.json"
    res = json.loads(path.read_text())
    sets = np.load(ROOT / "bench" / "results" / "work" / f"{args.name}_sets.npz")
    argv = res["argv"]

    def flag(name, default):
        return argv_flag(argv, name, default)

    L, seed, stride = flag("--seq_len", 70), flag("--seed", 0), flag("--ref_stride", 35)
    data_path = flag("--data", str(ROOT / "data/ecoli_536.fasta.gz"))
    data = load_sequences(data_path, L, val_fraction=0.2, seed=seed)
    val = heldout_windows(data.val_segments, L, stride)
    t = time.perf_counter()
    ref = MotifReference(val, group=args.motifs, max_n=args.max_n, seed=seed)
    names = [str(n) for n in sets["names"]]
    for i, name in enumerate(names):
        row = next(r for r in res["rows"] if r["set"] == name)
        row.update(ref.row(sets[f"row{i}"])[0])
    res["motif_command"] = f"python bench/quality_rescore.py {args.name} --motifs {args.motifs} --max_n {args.max_n}"
    res["motif_seconds"] = time.perf_counter() - t
    path.write_text(json.dumps(res, indent=2, default=float) + "\n")
    print(table(res["rows"], ["set", "motif_pearson_r", "motif_mean_hit_rate", "motif_mean_hit_rate_ref"]))
    for r in res["rows"]:
        print(f"{r['set']}: over {r.get('motif_over')}; under {r.get('motif_under')}")
    print(f"wrote {path} ({res['motif_seconds']:.0f} s of scanning)")


if __name__ == "__main__":
    main()
