"""Add JASPAR motif figures to a finished quality run, or judge its C2ST again, from the sequences it kept.

    python bench/quality_rescore.py quality_gumbel_L500 [--motifs all] [--max_n 2000]
    python bench/quality_rescore.py quality_markov_L1000_hmm --motifs none --c2st --tag rejudged

bench/quality.py keeps every row's sequences in bench/results/work/<name>_sets.npz; this scores
them with analysis.motifs (the same code as --motifs) against the held-out windows of the same
split (data, --seq_len, seed and --ref_stride from the JSON), adds the motif_ fields to each row
of bench/results/<name>.json and prints the table. Motif scanning is slow (Biopython's PSSM scan of
every matrix over both strands), so a long run scores its motifs afterwards, alone. With --c2st each
row's C2ST is judged again by the current judge (analysis.metrics.c2st_row, as bench/quality.py
does), the earlier figures kept beside it as c2st_*_before; with --tag the result is written to
<name>_<tag>.json and the run's own JSON is left as it was.
"""
import argparse
import json
import logging
import time

import numpy as np

from common import ROOT, argv_flag, grouped_folds, judged_split, table

from analysis.metrics import c2st_row
from analysis.motifs import MotifReference


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help="JSON name under bench/results (without .json)")
    ap.add_argument("--motifs", default="all", metavar="GROUP", help="JASPAR group (analysis.motifs.GROUPS)")
    ap.add_argument("--max_n", type=int, default=2000, help="sequences scanned per side")
    ap.add_argument("--c2st", action="store_true", help="judge every row's C2ST again with the current judge")
    ap.add_argument("--grouped", action=argparse.BooleanOptionalAction, default=None,
                    help="with --c2st: the judge's folds keep each held-out block together (default: above "
                         "70 bp, as bench/quality.py)")
    ap.add_argument("--tag", default="", help="write <name>_<tag>.json instead of rewriting <name>.json")
    args = ap.parse_args()
    if args.motifs == "none" and not args.c2st:
        ap.error("nothing to do: --motifs none without --c2st")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    path = ROOT / "bench" / "results" / f"{args.name}.json"
    res = json.loads(path.read_text())
    sets = np.load(ROOT / "bench" / "results" / "work" / f"{args.name}_sets.npz")
    rescore(res, sets, name=args.name, motifs=args.motifs, max_n=args.max_n, c2st=args.c2st, grouped=args.grouped,
            tag=args.tag)
    out = path.with_name(f"{args.name}_{args.tag}.json") if args.tag else path
    out.write_text(json.dumps(res, indent=2, default=float) + "\n")
    print(f"wrote {out}")


def rescore(res: dict, sets, *, name: str, motifs: str = "all", max_n: int = 2000, c2st: bool = False,
            grouped: bool | None = None, tag: str = "") -> dict:
    """Score the kept sets again (see the module docstring) into res's rows, in place, and return res:
    its run's data, length, seed and stride come from res["argv"]; grouped None means above 70 bp."""
    argv = res["argv"]

    def flag(opt, default):
        return argv_flag(argv, opt, default)

    L, seed, stride = flag("--seq_len", 70), flag("--seed", 0), flag("--ref_stride", 35)
    data_path = flag("--data", str(ROOT / "data/ecoli_536.fasta.gz"))
    _, val, val_groups = judged_split(data_path, L, seed, stride)
    names = [str(n) for n in sets["names"]]
    rows = [next(r for r in res["rows"] if r["set"] == n) for n in names]
    if c2st:
        grouped = grouped_folds(L, grouped)
        groups = {"real_groups": val_groups} if grouped else {}
        t = time.perf_counter()
        for i, row in enumerate(rows):
            row.update({f"{k}_before": row.get(k) for k in C2ST_KEYS})
            row.update(c2st_row(val, sets[f"row{i}"], seed=seed, **groups))
            row["c2st_grouped"] = grouped
        res["c2st_command"] = (f"python bench/quality_rescore.py {name} --motifs {motifs} --c2st"
                               + (" --grouped" if grouped else " --no-grouped") + f" --tag {tag}" * bool(tag))
        res["c2st_seconds"] = time.perf_counter() - t
        print(table(rows, ["set", *C2ST_KEYS, "c2st_auc_before", "c2st_sd_before", "c2st_judge_before"]))
    if motifs != "none":
        t = time.perf_counter()
        ref = MotifReference(val, group=motifs, max_n=max_n, seed=seed)
        for i, row in enumerate(rows):
            row.update(ref.row(sets[f"row{i}"])[0])
        res["motif_command"] = f"python bench/quality_rescore.py {name} --motifs {motifs} --max_n {max_n}"
        res["motif_seconds"] = time.perf_counter() - t
        print(table(res["rows"], ["set", "motif_pearson_r", "motif_mean_hit_rate", "motif_mean_hit_rate_ref"]))
        for r in res["rows"]:
            print(f"{r['set']}: over {r.get('motif_over')}; under {r.get('motif_under')}")
    return res


C2ST_KEYS = ["c2st_auc", "c2st_lo", "c2st_hi", "c2st_sd", "c2st_judge"]


if __name__ == "__main__":
    main()
