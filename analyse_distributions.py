#!/usr/bin/env python
"""Compare generated real-valued sequences with real ones (the SeqGAN prototype's analysis).

    python analyse_distributions.py --real data/example_signals.txt --generated outputs/final_samples.txt \
        --output-dir analysis_results/

Writes analysis_metrics.txt and analysis_metrics.json (KS statistic and p-value, Wasserstein
distance, JS divergence of value histograms, autocorrelation at lags 1..5, diversity),
analysis_distributions.png (6 panels) and analysis_temporal.png (4 panels). Both inputs: one
sequence per line, space-separated numbers, all of one length. analyze_distributions.py is the
same tool under the other spelling.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from utils.domains import POSITIVE_INT
from utils.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(f"{self.prog}: {message}")


def report_text(row: dict, real: str, gen: str, max_lag: int) -> str:
    lines = [f"Distribution analysis: {gen} vs {real}", "",
             f"sequences: {row['n']} generated, {row['n_real']} real; length {row['length']}", "",
             "Marginal distribution (all values pooled)",
             f"  KS statistic            {row['ks_statistic']:.4f}   (p = {row['ks_pvalue']:.3g}; 0 = same distribution)",
             f"  Wasserstein distance    {row['wasserstein']:.4f}",
             f"  JS divergence (hist.)   {row['js_histogram']:.4f}   (base 2, 0..1)", "",
             "Summary statistics        generated     real"]
    for k in ("mean", "std", "median", "min", "max", "skew", "kurtosis"):
        lines.append(f"  {k:<22}{row[k + '_gen']:>10.4f}{row[k + '_real']:>10.4f}")
    lines += ["", "Autocorrelation           generated     real"]
    for k in range(1, max_lag + 1):
        lines.append(f"  lag {k:<18}{row[f'acf{k}_gen']:>10.4f}{row[f'acf{k}_real']:>10.4f}")
    lines.append(f"  mean |difference|       {row['acf_mae']:.4f}")
    lines += ["", "Diversity                 generated     real",
              f"  mean pairwise distance{row['mean_pairwise_distance_gen']:>10.4f}{row['mean_pairwise_distance_real']:>10.4f}"
              "   (Euclidean / sqrt(length))",
              f"  unique fraction       {row['unique_fraction_gen']:>10.4f}{row['unique_fraction_real']:>10.4f}", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    from utils import cli

    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = _Parser(prog=Path(sys.argv[0]).name, description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", required=True)
    ap.add_argument("--generated", required=True)
    ap.add_argument("--output-dir", "--output_dir", dest="output_dir", default="analysis_results")
    ap.add_argument("--max-lag", "--max_lag", dest="max_lag", type=POSITIVE_INT, default=5)
    args = ap.parse_args(argv)
    from analysis import distributions as DS
    from analysis.plots import distribution_panels, temporal_panels
    from utils.outputs import staged_dir, writable_dir
    from utils.sequences import atomic_write_text, read_real_valued

    real = read_real_valued(args.real)
    gen = read_real_valued(args.generated)
    writable_dir(Path(args.output_dir))
    if gen.shape[1] != real.shape[1]:
        raise ConfigError(f"{args.generated}: sequences of length {gen.shape[1]}, but {args.real} has {real.shape[1]}")
    if args.max_lag < 1 or args.max_lag >= real.shape[1]:
        raise ConfigError(f"--max-lag must be between 1 and {real.shape[1] - 1}")
    row = DS.compare(gen, real, max_lag=args.max_lag)
    row.update(n_real=int(real.shape[0]), length=int(real.shape[1]), real=args.real, generated=args.generated)
    out = Path(args.output_dir)
    with staged_dir(out) as stage:  # all four files land together, or the earlier ones stay
        atomic_write_text(stage / "analysis_metrics.txt", report_text(row, args.real, args.generated, args.max_lag))
        atomic_write_text(stage / "analysis_metrics.json", json.dumps(row, indent=2) + "\n")
        distribution_panels(gen, real, stage / "analysis_distributions.png")
        temporal_panels(gen, real, stage / "analysis_temporal.png")
    print(f"KS {row['ks_statistic']:.4f} (p {row['ks_pvalue']:.3g}), Wasserstein {row['wasserstein']:.4f}, "
          f"JS {row['js_histogram']:.4f}, autocorrelation |diff| {row['acf_mae']:.4f}; "
          f"wrote analysis_metrics.txt/.json, analysis_distributions.png, analysis_temporal.png to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
