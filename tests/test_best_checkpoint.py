"""The checkpoint README tells users to generate from (<model>_best.pt) carries every closing fit,
and is picked by held-out NLL where the family has a likelihood."""
import pytest
import torch

from models.registry import get_family
from models.stacked import Stacked
from train import checkpoint as ckpt_io
from train.engine import load_ensemble, train
from utils.config import parse_set, resolve

SMALL = ["model.d_model=16", "model.g_layers=1", "model.n_heads=2", "model.noise_dim=4", "model.ngram_order=2",
         "model.ngram_refit=300", "model.ngram_refit_tolerance=10", "train.eval_samples=20", "data.seq_len=20",
         "train.batch=16", "train.steps_per_epoch=3", "train.save_every=0", "train.sample_every=0"]


def cfg(genome, tmp_path, *sets):
    return resolve("stacked", get_family("stacked").Config, {"data": {"path": str(genome)}},
                   parse_set(SMALL + [f"train.checkpoint_dir={tmp_path}/ck", f"train.run_dir={tmp_path}/r", *sets]))


def test_best_from_an_earlier_epoch_carries_the_closing_fit(genome, tmp_path, monkeypatch):
    scripted = iter([1.0, 2.0, 3.0])  # held-out NLL rises after epoch 1: best is epoch 1, not the last

    def evaluate(self, nets, ctx):
        return {"val_nll": next(scripted)}

    monkeypatch.setattr(Stacked, "evaluate", evaluate)
    res = train(cfg(genome, tmp_path, "train.epochs=3"))
    best, last = ckpt_io.load(res.best_path), ckpt_io.load(res.last_path)
    assert best["epoch"] == 1 and last["epoch"] == 3 and best["best_score"] == 1.0
    for ck in (best, last):  # the refit (kept: tolerance 10) is in both files
        assert ck["members"][0]["G.ngram.refit"].abs().sum() > 0
    # the best file's trained weights are epoch 1's, untouched by the fit
    assert not torch.equal(best["members"][0]["G.head2.weight"], last["members"][0]["G.head2.weight"])
    ens, _ = load_ensemble(res.best_path)
    assert ens.sample(5, seed=0).shape == (5, 20)


def test_best_is_picked_by_held_out_nll(genome, tmp_path):
    res = train(cfg(genome, tmp_path, "train.epochs=2"))
    nll = [r["val_nll"] for r in res.history]
    best = ckpt_io.load(res.best_path)
    assert best["best_score"] == pytest.approx(min(nll)) and best["epoch"] == 1 + nll.index(min(nll))
    assert 0.5 < nll[-1] < 1.5  # nats per base: near log(4) = 1.386 for a barely trained model
