"""The judge in the per-epoch monitor (train/judging.py): judged when affordable, against the held-out
blocks that pick best.pt, beside the floor, without changing what a seeded run trains."""
import numpy as np
import pytest

from conftest import random_dna, train_tiny
from train.engine import read_metrics
from train.judging import EpochJudge, MIN_N, PRIOR_S_PER_BASE
from utils.errors import ConfigError
from utils.sequences import load_sequences


@pytest.fixture
def genome20k(tmp_path):
    """20 kb in two records: enough held-out blocks for 100+ windows every 10 bases at 16 bp."""
    rng = np.random.default_rng(5)
    motif = "ATGGCGTTAGCC"
    seq = "".join(motif if rng.random() < 0.4 else random_dna(12, int(rng.integers(1e9))) for _ in range(1700))
    path = tmp_path / "g20k.fasta"
    path.write_text(f">a\n{seq[:10000]}\n>b\n{seq[10000:]}\n")
    return path


def _judge(share, n_ref=300, L=16, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 4, (n_ref, L)).astype(np.uint8)
    train = rng.integers(0, 4, (n_ref, L)).astype(np.uint8)
    return EpochJudge(share, ref, None, train, seed=1)


def test_an_epoch_is_judged_only_while_the_judging_keeps_within_its_share_of_the_run():
    j = _judge(0.05)
    n, L = 200, 16
    prior = 2 * PRIOR_S_PER_BASE * n * L  # the first judge also judges the floor
    assert not j.due(n, L, elapsed=0.9 * prior / 0.05, left=np.inf)
    assert j.due(n, L, elapsed=1.1 * prior / 0.05, left=np.inf)
    # under --budget: not when the judge would not end inside what is left
    assert not j.due(n, L, elapsed=1e6, left=0.5 * prior)
    # too few sequences for an interval narrower than the range, or more than the reference has
    assert not j.due(MIN_N - 1, L, elapsed=1e6, left=np.inf)
    assert not j.due(301, L, elapsed=1e6, left=np.inf)
    sample = np.random.default_rng(9).integers(0, 4, (n, L)).astype(np.uint8)
    row = j.row(sample, L, epoch=0, elapsed=1e6)
    assert row["val_c2st_n"] == n and row["judge_s"] > 0
    # the seconds spent count: at the same elapsed time the next judge must wait for the run to grow
    assert j.spent == pytest.approx(row["judge_s"])
    assert not j.row(sample, L, epoch=1, elapsed=0.9 * j.spent / 0.05)
    assert j.row(sample, L, epoch=1, elapsed=(j.spent + j.cost(n, L)) / 0.05 * 1.01)


def test_a_collapsed_sample_reads_far_above_the_real_floor():
    j = _judge(0.5, n_ref=400, L=16)
    collapsed = np.zeros((300, 16), np.uint8)  # "mostly A": every base A
    collapsed[:, ::5] = 2
    row = j.row(collapsed, 16, epoch=0, elapsed=1e6)
    assert row["val_c2st"] > 0.95
    assert row["c2st_floor"] < 0.65  # real training windows of the same source
    assert row["val_c2st_lo"] <= row["val_c2st"] <= row["val_c2st_hi"]
    assert row["c2st_vs_floor"] == "above the floor"


def test_the_share_must_lie_in_0_1():
    with pytest.raises(ConfigError, match="monitor_c2st"):
        EpochJudge.build(1.5, None, "dna", 0)
    assert EpochJudge.build(0.0, None, "dna", 0) is None
    assert EpochJudge.build(0.05, None, "real", 0) is None


def test_the_monitor_judges_the_selection_half_never_the_judged_one(tmp_path):
    from analysis.judge import selection_reference

    p = tmp_path / "g.fasta"
    p.write_text(">a\n" + random_dna(30000, 2) + "\n")
    apart = load_sequences(p, 50, val_fraction=0.2, block_size=3000, select_apart=True)
    ref, groups, what = selection_reference(apart)
    assert groups is None and "selection" in what
    sel = {bytes(w) for w in ref}
    judged = {bytes(w) for seg in apart.val_segments for w in np.lib.stride_tricks.sliding_window_view(seg, 50)}
    assert sel and not sel & judged
    assert ref.shape[0] > apart.select.shape[0]  # every 10 bases, not the non-overlapping windows
    whole = load_sequences(p, 50, val_fraction=0.2, block_size=3000)
    ref2, _, what2 = selection_reference(whole)
    assert "selection" not in what2 and ref2.shape[0] > whole.val.shape[0]
    none = load_sequences(p, 50, val_fraction=0.0)
    assert selection_reference(none)[0] is None


def test_a_run_with_the_judge_trains_what_it_trains_without_and_writes_its_figures(genome20k, tmp_path, monkeypatch):
    from train import judging
    from train.engine import resolve_device

    # the first judge is priced as free, so a run of a fraction of a second judges its first epoch on any machine
    monkeypatch.setattr(judging, "PRIOR_S_PER_BASE", 0.0)
    sets = ["data.seq_len=16", "train.epochs=3", "train.batch=32", "train.steps_per_epoch=4", "train.eval_samples=150",
            "train.sample_every=0", "model.d_model=16", "model.g_layers=1", "model.d_layers=1", "model.n_heads=2", "model.adv_weight=0"]
    seen, real = [], judging.c2st
    monkeypatch.setattr(judging, "c2st", lambda *a, **kw: seen.append(kw["device"]) or real(*a, **kw))
    cfg, on = train_tiny("stacked", genome20k, tmp_path / "on", [*sets, "train.monitor_c2st=0.99"])
    _, off = train_tiny("stacked", genome20k, tmp_path / "off", [*sets, "train.monitor_c2st=0"])
    assert [r["val_nll"] for r in on.history] == [r["val_nll"] for r in off.history]
    assert [r["sample_gc"] for r in on.history] == [r["sample_gc"] for r in off.history]
    judged = [r for r in read_metrics(on.run_dir / "metrics.csv") if r.get("val_c2st") not in (None, "")]
    assert judged, "a share of 99% judges some epoch"
    for r in judged:
        assert 0.0 <= r["val_c2st_lo"] <= r["val_c2st"] <= r["val_c2st_hi"] <= 1.0
        assert r["val_c2st_n"] == 150 and 0.0 <= r["c2st_floor"] <= 1.0
    assert not any("val_c2st" in r for r in off.history)
    # the judge trains where the run does (a run on a GPU: on the GPU)
    assert seen and set(seen) == {resolve_device(cfg.train.device)}
    assert (on.run_dir / "training_curves.png").stat().st_size > 0


def test_train_says_the_last_judged_figure_and_the_log_the_judged_epochs(genome20k, monkeypatch, capsys, caplog):
    import logging

    from main import main
    from train import judging

    monkeypatch.setattr(judging, "PRIOR_S_PER_BASE", 0.0)
    caplog.set_level(logging.INFO)  # main sets the dnagan logger to NOTSET: the root's level decides
    argv = ["--mode", "train", "--model", "markov", "--data", str(genome20k), "--seq_len", "16", "--epochs", "1",
            "--set", "train.eval_samples=120", "--set", "train.monitor_c2st=0.9"]
    assert main(argv) == 0
    out = capsys.readouterr()
    last = out.out.strip().splitlines()[-1]
    assert ", C2ST 0." in last and "at epoch 1, " in last and "the floor (0." in last
    assert "per-epoch C2ST: the monitoring sample against" in caplog.text and "the judge (on cpu)" in caplog.text
    assert "the floor (0." in caplog.text and "120 a side)" in caplog.text
    assert main([*argv, "--set", "train.monitor_c2st=0", "--overwrite"]) == 0
    assert "C2ST" not in capsys.readouterr().out
