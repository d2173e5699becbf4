import json

import numpy as np
import pytest
import torch

from main import main
from train import checkpoint as ckpt_io
from train.engine import load_ensemble, train
from utils.config import parse_set, resolve
from models.registry import get_family
from utils.sequences import read_sequences

TINY = ["train.eval_samples=50", "data.seq_len=24", "train.batch=32"]


def cfg_for(family, genome, *sets):
    fam = get_family(family)
    return resolve(family, fam.Config, {"data": {"path": str(genome)}}, parse_set(TINY + list(sets)))


def test_markov_train_checkpoint_reload_identical_samples(genome, tmp_path):
    res = train(cfg_for("markov", genome, "train.epochs=1", f"train.checkpoint_dir={tmp_path}/ck"))
    a = res.ensemble.sample(40, seed=5)
    ens, ck = load_ensemble(res.last_path)
    b = ens.sample(40, seed=5)
    assert torch.equal(a, b)
    assert not torch.equal(a, ens.sample(40, seed=6))
    assert ck["config"]["model"]["order"] == 5 and ck["alphabet"] == "ACGT"
    # the chain learned the motif: ATGGCGTTAGCC is far more frequent than in random DNA
    seqs = "".join(read for read in map("".join, np.array(list("ACGT"))[ens.sample(200, seed=1).numpy()]))
    assert seqs.count("GCGTTAG") > 50


def test_markov_prompt_and_temperature(genome, tmp_path):
    res = train(cfg_for("markov", genome, "train.epochs=1", f"train.checkpoint_dir={tmp_path}/ck"))
    p = torch.tensor([0, 3, 2, 2])  # ATGG
    out = res.ensemble.sample(20, 30, seed=0, prompt=p)
    assert (out[:, :4] == p).all()
    cold = res.ensemble.sample(200, 24, seed=0, temperature=0.05)
    hot = res.ensemble.sample(200, 24, seed=0, temperature=5.0)
    from analysis.metrics import unique_fraction
    assert unique_fraction(cold) < unique_fraction(hot)


def test_bagging_members_and_generation_in_turn(genome, tmp_path):
    res = train(cfg_for("markov", genome, "train.epochs=1", "train.bagging=true", "train.n_models=3",
                        f"train.checkpoint_dir={tmp_path}/ck"))
    ens, ck = load_ensemble(res.best_path)
    assert len(ck["members"]) == 3
    counts = [m["chain.counts"] for m in ck["members"]]
    assert not torch.equal(counts[0], counts[1])  # different bootstrap resamples
    out = ens.sample(9, seed=3)
    assert out.shape == (9, 24) and len({tuple(r) for r in out.tolist()}) == 9
    # members are drawn in turn: rows 0, 3, 6 come from member 0, sampled first
    g = torch.Generator().manual_seed(3)
    first = ens.family.sample(ens.members[0], 3, 24, generator=g)
    assert torch.equal(out[0::3], first)


def test_resume_matches_uninterrupted(genome, tmp_path):
    full = train(cfg_for("markov", genome, "train.epochs=3", "train.bagging=true", "train.n_models=2",
                         f"train.checkpoint_dir={tmp_path}/a", f"train.run_dir={tmp_path}/ra"))
    part = train(cfg_for("markov", genome, "train.epochs=2", "train.bagging=true", "train.n_models=2",
                         f"train.checkpoint_dir={tmp_path}/b", f"train.run_dir={tmp_path}/rb"))
    resumed = train(cfg_for("markov", genome, "train.epochs=3"), resume=str(part.last_path))
    a, b = ckpt_io.load(full.last_path), ckpt_io.load(resumed.last_path)
    assert b["epoch"] == 3
    for ma, mb in zip(a["members"], b["members"]):
        assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert torch.equal(a["rng"]["shuffle"], b["rng"]["shuffle"])
    assert [r["val_score"] for r in full.history] == pytest.approx([r["val_score"] for r in resumed.history])


def test_cli_train_gen_analyze_end_to_end(genome, tmp_path, capsys):
    rc = main(["--mode", "train", "--model", "markov", "--data", str(genome), "--seq_len", "24",
               "--epochs", "2", "--order", "3", "--run_dir", "runs/t", "--set", "train.eval_samples=50"])
    assert rc == 0
    assert (tmp_path / "runs/t/metrics.csv").exists() and (tmp_path / "runs/t/training_curves.png").stat().st_size > 0
    assert "order: 3" in (tmp_path / "runs/t/config.yaml").read_text()
    rc = main(["--mode", "gen", "--checkpoint", "checkpoints/markov_best.pt", "--n", "30",
               "--data", str(genome)])
    assert rc == 0
    gen = read_sequences(tmp_path / "outputs/generated.fasta")
    assert gen.shape == (30, 24)
    assert len((tmp_path / "outputs/generated.txt").read_text().split()) == 30
    rc = main(["--mode", "analyze", "--generated", "outputs/generated.fasta", "--data", str(genome),
               "--output-dir", "outputs/an"])
    assert rc == 0
    m = json.loads((tmp_path / "outputs/an/metrics.json").read_text())
    assert m["n"] == 30 and 0 <= m["js_4mer"] < 1 and "c2st_auc" in m
    assert (tmp_path / "outputs/an/position_heatmap.png").stat().st_size > 0


def test_show_config_prints_resolved(capsys):
    assert main(["--model", "markov", "--order", "2", "--epochs", "4", "--show-config"]) == 0
    out = capsys.readouterr().out
    assert "order: 2" in out and "epochs: 4" in out


@pytest.mark.parametrize("argv,msg", [
    (["--mode", "train", "--model", "markov", "--data", "missing.fa"], "missing.fa: no such file"),
    (["--mode", "train", "--model", "nope"], "unknown model family 'nope'"),
    (["--mode", "train", "--model", "markov", "--set", "model.bogus=1"], "unknown config key model.bogus"),
    (["--mode", "gen", "--checkpoint", "nothing.pt"], "nothing.pt: no such checkpoint"),
    (["--mode", "train", "--epochs", "x"], "expected a non-negative integer"),
])
def test_bad_input_one_line_exit_2(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0] and "Traceback" not in err[0]


def test_bad_fasta_and_corrupt_checkpoint_keep_existing_outputs(tmp_path, capsys):
    bad = tmp_path / "prot.fasta"
    bad.write_text(">p1\nACGTACGT\n>p2\nMELVINQ\n")
    assert main(["--mode", "train", "--model", "markov", "--data", str(bad), "--seq_len", "4"]) == 2
    assert "record 'p2', position 2: 'E'" in capsys.readouterr().err
    out = tmp_path / "outputs" / "generated.fasta"
    out.parent.mkdir(exist_ok=True)
    out.write_text(">keep\nACGT\n")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["--mode", "gen", "--checkpoint", str(junk)]) == 2
    assert "not a dnagan checkpoint" in capsys.readouterr().err
    assert out.read_text() == ">keep\nACGT\n"


def test_early_stopping_stops_after_patience(genome, tmp_path):
    # the Markov chain's validation score cannot improve after the first epoch
    res = train(cfg_for("markov", genome, "train.epochs=10", "train.early_stopping=true", "train.patience=2",
                        f"train.checkpoint_dir={tmp_path}/ck", f"train.run_dir={tmp_path}/r"))
    assert res.epochs_done == 3 and len(res.history) == 3
    assert ckpt_io.load(res.best_path)["epoch"] == 1 and ckpt_io.load(res.last_path)["epoch"] == 3


def test_windows_path_and_gen_data_report(genome, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "g.fasta").write_text(genome.read_text())
    win = "data\\g.fasta"
    assert main(["--mode", "train", "--model", "markov", "--data", win, "--seq_len", "24",
                 "--set", "train.eval_samples=40"]) == 0
    assert main(["--mode", "gen", "--checkpoint", "checkpoints\\markov_best.pt", "--n", "5", "--data", win]) == 0
    assert "4-mer JS" in capsys.readouterr().out


def test_early_stopping_under_a_curriculum_counts_only_epochs_at_the_full_length(genome, tmp_path, caplog):
    """The held-out score is read at the full length and may stall while the windows grow: with a
    curriculum (8, 16, then 24 bases, two epochs a stage) only epochs at 24 bases count towards the
    patience: with patience 1 the chain, whose score does not improve in epoch 2, stops after epoch 6
    (its second at 24 bases, the first that did not improve), not 2; a run resumed after epoch 5
    stops at the same epoch."""
    import logging

    sets = ["data.seq_len=24", "train.epochs=12", "train.early_stopping=true", "train.patience=1",
            "train.curriculum=true", "train.curriculum_start=8", "train.curriculum_step=8", "train.curriculum_every=2"]
    with caplog.at_level(logging.INFO, logger="dnagan"):
        res = train(cfg_for("markov", genome, *sets, f"train.checkpoint_dir={tmp_path}/ck", f"train.run_dir={tmp_path}/r"))
    assert [r["length"] for r in res.history] == [8, 8, 16, 16, 24, 24]
    assert res.epochs_done == 6 and "counted from epoch 5, the first at the full length" in caplog.text
    part = train(cfg_for("markov", genome, *[s for s in sets if s != "train.epochs=12"], "train.epochs=5",
                         f"train.checkpoint_dir={tmp_path}/ck2", f"train.run_dir={tmp_path}/r2"))
    resumed = train(cfg_for("markov", genome, *sets), resume=str(part.last_path))
    assert resumed.epochs_done == 6
