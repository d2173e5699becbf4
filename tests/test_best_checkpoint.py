"""The checkpoint README tells users to generate from (<model>_best.pt) carries every closing fit,
and is picked by held-out NLL where the family has a likelihood."""
import pytest
import torch

from conftest import GUMBEL_TINY, train_tiny
from models.registry import get_family
from models.stacked import Stacked
from train import checkpoint as ckpt_io
from train.engine import load_ensemble, read_metrics, train
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
    # metrics.csv says which epoch was delivered and what its fit did, beside the last epoch's fit
    row = read_metrics(res.run_dir / "metrics.csv")[-1]
    assert row["best_epoch"] == 1 and row["best_refit_iters"] >= 1 and row["best_refit_kept"] == 1
    assert row["refit_iters"] >= 1  # the last checkpoint's own fit


def test_best_is_picked_by_held_out_nll(genome, tmp_path):
    res = train(cfg(genome, tmp_path, "train.epochs=2"))
    nll = [r["val_nll"] for r in res.history]
    best = ckpt_io.load(res.best_path)
    assert best["best_score"] == pytest.approx(min(nll)) and best["epoch"] == 1 + nll.index(min(nll))
    assert 0.5 < nll[-1] < 1.5  # nats per base: near log(4) = 1.386 for a barely trained model


def test_plan_cursor_moves_by_epochs_or_by_budget_share():
    from train.schedule import Cursor, Phase, Plan

    plan = Plan((Phase("a", 3, share=0.5), Phase("b", 2, share=0.2), Phase("c", 4, 7, share=0.3)))
    c = Cursor(plan)  # no budget: the plan's epochs, as Plan.phase says
    seen = []
    for e in range(12):
        start = c.start_epoch()
        seen.append((c.phase.name, start))
        assert c.phase == plan.phase(e)
        c.end_epoch()
    assert [n for n, _ in seen] == ["a"] * 3 + ["b"] * 2 + ["c"] * 7 and [s for _, s in seen][:6] == [True, False, False, True, False, True]
    c = Cursor(plan)  # budget: phase a ends at 50% of the time although its 3 epochs are not done
    names = []
    for used in (0.1, 0.45, 0.55, 0.6, 0.69, 0.71, 0.99):
        c.start_epoch(used)
        names.append(c.phase.name)
        c.end_epoch()
    assert names == ["a", "a", "b", "b", "c", "c", "c"]  # b's 2 epochs ran out before 70%
    assert Cursor(plan, *c.state()).phase.name == "c"  # restored from a checkpoint
    c = Cursor(plan)  # a overran b's share too: b still gets its one epoch
    names = []
    for used in (0.1, 0.75, 0.8, 0.9):
        c.start_epoch(used)
        names.append(c.phase.name)
        c.end_epoch()
    assert names == ["a", "b", "c", "c"]


def test_gan_warmup_ends_at_its_budget_share():
    from models.gumbel import GumbelConfig

    c = GumbelConfig(adv_weight=0.1, adv_every=1, warmup_steps=1000, warmup_share=0.4)
    assert not c.g_active(10) and not c.g_active(10, 0.39)
    assert c.g_active(10, 0.41) and c.g_active(1000) and c.g_active(1000, 0.0)


def test_seqgan_under_a_budget_reaches_every_phase(genome, tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="dnagan")
    sets = ["model.hidden=8", "model.emb=8", "model.rollout_num=2", "model.d_emb=4", "model.d_filter_sizes=[2, 3]",
            "model.d_num_filters=[4, 4]", "model.pre_epochs=100000", "model.dis_pre_epochs=100000",
            "model.total_batch=1000000", "model.budget_shares=[0.4, 0.2, 0.4]", "model.pg_batch=4",
            "train.eval_samples=10", "data.seq_len=16", "train.batch=8", "train.steps_per_epoch=2",
            "train.save_every=0", "train.sample_every=0", "train.time_budget=6"]
    res = train(resolve("seqgan", get_family("seqgan").Config, {"data": {"path": str(genome)}}, parse_set(sets)),
                save=False)
    phases = [r["phase"] for r in res.history]
    assert phases[0] == "gen_pretrain" and "dis_pretrain" in phases and phases[-1] == "adversarial"
    assert phases == sorted(phases, key=["gen_pretrain", "dis_pretrain", "adversarial"].index)  # in order
    assert "gen_pretrain 100000 epoch(s) or 2 s" in caplog.text  # the log says the plan


def test_seqgan_best_carries_its_table_refit(genome, tmp_path):
    sets = ["model.hidden=8", "model.emb=8", "model.rollout_num=2", "model.d_emb=4", "model.d_filter_sizes=[2, 3]",
            "model.d_num_filters=[4, 4]", "model.pre_epochs=2", "model.dis_pre_epochs=1", "model.total_batch=1",
            "model.pg_batch=4", "model.ngram_order=2", "model.ngram_refit=300", "model.ngram_refit_tolerance=10",
            "model.ngram_min_bases=0",
            "train.eval_samples=10", "data.seq_len=16", "train.batch=8", "train.steps_per_epoch=2",
            "train.save_every=0", "train.sample_every=0", f"train.checkpoint_dir={tmp_path}/ck", f"train.run_dir={tmp_path}/r"]
    res = train(resolve("seqgan", get_family("seqgan").Config, {"data": {"path": str(genome)}}, parse_set(sets)))
    best, last = ckpt_io.load(res.best_path), ckpt_io.load(res.last_path)
    for ck in (best, last):
        assert ck["members"][0]["G.ngram.refit"].abs().sum() > 0
    assert res.history[-1]["refit_kept"] == 1.0
    ens, _ = load_ensemble(res.best_path)
    assert ens.sample(4, seed=0).shape == (4, 16)


def test_small_data_leaves_the_ngram_table_out_and_the_checkpoint_says_so(genome, tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="dnagan")
    c = cfg(genome, tmp_path, "train.epochs=1", "model.ngram_min_bases=10000000")
    res = train(c)
    ck = ckpt_io.load(res.last_path)
    assert ck["config"]["model"]["ngram_order"] == 0 and not any("ngram" in k for k in ck["members"][0])
    assert "model.ngram_order 2 -> 0" in caplog.text and "fewer than model.ngram_min_bases" in caplog.text
    ens, _ = load_ensemble(res.last_path)  # builds the same networks from the stored config
    assert ens.sample(3, seed=0).shape == (3, 20)
    # enough data: the table stays
    c2 = cfg(genome, tmp_path, "train.epochs=1", "model.ngram_min_bases=100", "train.checkpoint_dir=" + str(tmp_path / "ck2"),
             "train.run_dir=" + str(tmp_path / "r2"))
    ck2 = ckpt_io.load(train(c2).last_path)
    assert ck2["config"]["model"]["ngram_order"] == 2 and "G.ngram.table.weight" in ck2["members"][0]


def _gumbel(genome, tmp_path, name, sets):
    return train_tiny("gumbel", genome, tmp_path / name, GUMBEL_TINY + sets)[1]


def test_the_state_before_the_first_adversarial_epoch_is_kept_as_the_mle_snapshot(genome, tmp_path):
    """warmup_steps 5 with 3 steps an epoch: the warm-up is over at the start of epoch 3 (step 6), so
    epochs 1-2 are likelihood-only, <model>_mle.pt holds their end, and it equals a run of the same
    seed stopped after 2 epochs; an MLE-only run (adv_weight 0) writes no snapshot."""
    from train.engine import load_ensemble

    adv = ["model.adv_weight=0.5", "model.adv_every=1", "model.warmup_steps=5"]
    res = _gumbel(genome, tmp_path, "adv", adv + ["train.epochs=4"])
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4]
    assert all(r.get("g_adv", 0) == 0 for r in res.history[:2]) and res.history[2]["g_adv"] != 0
    snap = tmp_path / "adv" / "gumbel_mle.pt"
    ens, ck = load_ensemble(snap, device="cpu")
    assert ck["epoch"] == 2 and ck["adversarial"] is False
    _gumbel(genome, tmp_path, "short", adv + ["train.epochs=2"])
    short, _ = load_ensemble(tmp_path / "short" / "gumbel_last.pt", device="cpu")
    last, _ = load_ensemble(tmp_path / "adv" / "gumbel_last.pt", device="cpu")
    for k, v in short.members[0]["G"].state_dict().items():
        assert torch.equal(ens.members[0]["G"].state_dict()[k], v), k
    assert not all(torch.equal(last.members[0]["G"].state_dict()[k], v)
                   for k, v in short.members[0]["G"].state_dict().items())
    assert not (tmp_path / "short" / "gumbel_mle.pt").exists()  # it stopped before any adversarial epoch
    _gumbel(genome, tmp_path, "mle", ["model.adv_weight=0", "train.epochs=3"])
    assert not (tmp_path / "mle" / "gumbel_mle.pt").exists()


def test_seqgan_snapshots_before_its_adversarial_phase(genome, tmp_path):
    from train.engine import load_ensemble

    sets = ["model.hidden=8", "model.emb=8", "model.rollout_num=2", "model.d_emb=4", "model.d_filter_sizes=[2, 3]",
            "model.d_num_filters=[4, 4]", "model.pre_epochs=2", "model.dis_pre_epochs=1", "model.total_batch=2",
            "model.rounds_per_epoch=1", "model.pg_batch=4", "train.eval_samples=10", "data.seq_len=12",
            "train.batch=8", "train.steps_per_epoch=2", "train.sample_every=0"]
    cfg = resolve("seqgan", get_family("seqgan").Config,
                  {"data": {"path": str(genome)}, "train": {"checkpoint_dir": str(tmp_path / "ck"),
                                                            "run_dir": str(tmp_path / "run")}}, parse_set(sets))
    res = train(cfg)
    assert [r["phase"] for r in res.history] == ["gen_pretrain"] * 2 + ["dis_pretrain", "adversarial", "adversarial"]
    _, ck = load_ensemble(tmp_path / "ck" / "seqgan_mle.pt", device="cpu")
    assert ck["epoch"] == 3 and ck["plan_cursor"] == [2, 0]  # its next epoch is the first adversarial one


def test_under_a_curriculum_the_adversarial_part_waits_for_the_full_length(genome, tmp_path):
    """Length 8 for two epochs, then 16: with the warm-up over after one step, G's adversarial term
    still starts only at the first full-length epoch, so the likelihood snapshot is of that length."""
    from train.engine import load_ensemble

    sets = ["model.adv_weight=0.5", "model.adv_every=1", "model.warmup_steps=1", "train.epochs=4",
            "train.curriculum=true", "train.curriculum_start=8", "train.curriculum_step=8", "train.curriculum_every=2"]
    res = _gumbel(genome, tmp_path, "cur", sets)
    assert [r["length"] for r in res.history] == [8, 8, 16, 16]
    assert all(r.get("g_adv", 0) == 0 for r in res.history[:2]) and res.history[2]["g_adv"] != 0
    _, ck = load_ensemble(tmp_path / "cur" / "gumbel_mle.pt", device="cpu")
    assert ck["epoch"] == 2


def test_bench_quality_gives_an_epoch_snapshot_its_closing_fit(genome, tmp_path):
    """bench/quality.py --pair_mle / --closing refits a snapshot as the engine would (it failed on the
    closing fit's deadline, stop 29, after a 900-s run)."""
    import sys
    from types import SimpleNamespace

    from conftest import ROOT
    from utils.sequences import load_sequences

    sys.path.insert(0, str(ROOT / "bench"))
    import quality

    res = train(cfg(genome, tmp_path, "train.epochs=1"))
    data = load_sequences(str(genome), 20, val_fraction=0.2, seed=0)
    args = SimpleNamespace(model="stacked", n=8, seq_len=20, temperature=1.0, seed=0)
    plain, *_ = quality.from_checkpoint(args, data, res.best_path)
    refit, _, _, snap = quality.from_checkpoint(args, data, res.best_path, closing=True)
    assert refit.shape == plain.shape == (8, 20) and snap.epochs_done == 1


@pytest.mark.parametrize("spent", [False, True])
def test_the_best_checkpoint_is_fitted_first_and_the_last_fit_waits_for_the_budget(genome, tmp_path, monkeypatch,
                                                                                    caplog, spent):
    """When the best checkpoint is an earlier epoch's, its closing fit comes first (it is the file
    users generate from); under --budget the last checkpoint's fit is skipped when the budget left
    is shorter than the first fit took (before: the two fits shared it and gumbel ended 20 s past
    --budget 300)."""
    import dataclasses
    import logging

    from train.engine import Run

    def evaluate(self, nets, ctx):  # best is epoch 1 (the pass that prices the fit reads epoch 0 too)
        return {"val_nll": 1.0 if ctx.epoch == 0 else 2.0 + ctx.epoch}

    monkeypatch.setattr(Stacked, "evaluate", evaluate)
    run = Run(cfg(genome, tmp_path, "train.epochs=3", "train.time_budget=600"))
    real_fit, calls = run.closing.fit, []

    def fit(nets, x, y, ctx):
        calls.append(ctx.deadline)
        if spent:
            run.t0 -= 600  # this fit spends the budget
        return real_fit(nets, x, y, ctx)

    run.closing = dataclasses.replace(run.closing, fit=fit)
    with caplog.at_level(logging.INFO, logger="dnagan"):
        res = run.run()
    best, last = ckpt_io.load(res.best_path), ckpt_io.load(res.last_path)
    assert best["epoch"] == 1 and last["epoch"] == 3
    assert best["members"][0]["G.ngram.refit"].abs().sum() > 0  # the delivered file has its fit either way
    first_best = caplog.text.index("closing fit of the best checkpoint (epoch 1)")
    if spent:
        assert len(calls) == 1 and res.history[-1]["refit_skipped"] == 1.0
        assert "closing fit of the last checkpoint skipped" in caplog.text
        assert last["members"][0]["G.ngram.refit"].abs().sum() == 0
    else:
        assert len(calls) == 2 and calls[0] < calls[1] and "refit_skipped" not in res.history[-1]
        assert first_best < caplog.text.index("closing fit: ")
        assert last["members"][0]["G.ngram.refit"].abs().sum() > 0
