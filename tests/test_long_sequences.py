"""Every family trains through the length curriculum to 500 bp and generates 500 bp (issue 18, Must 1
in its functional part: positional tables, rollouts and caches cover the length). Quality at length
is a benchmark (bench/quality.py --seq_len 500), not a test."""
import numpy as np
import pytest

from main import main
from utils.sequences import read_sequences


@pytest.fixture
def long_genome(tmp_path):
    rng = np.random.default_rng(4)
    # 120 kb: block-split into training and held-out blocks at 500 bp (100 x seq_len)
    seq = "".join(np.array(list("ACGT"))[rng.choice(4, 120_000, p=[0.3, 0.2, 0.2, 0.3])])
    path = tmp_path / "long.fasta"
    path.write_text(">long\n" + seq + "\n")
    return path


@pytest.mark.parametrize("family", ["stacked", "gumbel", "seqgan", "masked", "markov"])
def test_every_family_trains_through_the_curriculum_and_generates_500_bp(family, long_genome, tmp_path):
    run = ["--mode", "train", "--model", family, "--data", str(long_genome), "--seq_len", "500", "--curriculum",
           "--epochs", "2", "--batch", "8", "--set", "train.curriculum_every=1", "--set", "train.steps_per_epoch=2",
           "--set", "train.eval_samples=8", "--set", "train.sample_every=0", "--checkpoint_dir", "ck",
           "--run_dir", "run"]
    if family == "masked":  # one model pass per base when sampling (the monitor and gen): 10 bases a pass here
        run += ["--set", "model.val_windows=16", "--set", "model.gen_steps=50"]  # 10 bases a pass
    assert main(run) == 0
    import csv

    rows = list(csv.DictReader((tmp_path / "run/metrics.csv").read_text().splitlines()))
    assert [int(r["length"]) for r in rows][:2] == [50, 100]  # 500 bp: the curriculum starts at 50, steps 50
    assert main(["--mode", "gen", "--checkpoint", f"ck/{family}_best.pt", "--n", "3", "--output", "g.fasta"]) == 0
    x = read_sequences("g.fasta")
    assert x.shape == (3, 500) and x.max() <= 3
