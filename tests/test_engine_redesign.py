"""The engine and family interface: bugs found in review (each failed on the engine before the
redesign), the time budget, exact resume for the GAN families, family-owned flags, the phase plan,
and analysis/distributions.py against values worked out by hand."""
import json
import logging
import re
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, random_dna
from analysis import distributions as DS
from main import main
from models.markov import Markov
from models.registry import FAMILIES, Family, get_family
from train import checkpoint as ckpt_io
from train.engine import Run, train
from utils.config import parse_set, resolve
from utils.errors import ConfigError
from utils.sequences import load_sequences, write_fasta

STACKED = ["model.d_model=16", "model.g_layers=1", "model.d_layers=1", "model.n_heads=2", "model.noise_dim=4",
           "model.adv_weight=0.1", "model.adv_every=1", "model.warmup_steps=0", "train.eval_samples=20",
           "data.seq_len=20", "train.batch=16", "train.steps_per_epoch=3", "train.save_every=0",
           "train.sample_every=0"]
GUMBEL = ["model.adv_weight=0.1", "model.hidden=16", "model.noise_dim=4", "model.d_filters=[4, 8]", "model.d_hidden=8",
          "model.adv_every=2", "model.warmup_steps=3", "train.eval_samples=20", "data.seq_len=20",
          "train.batch=16", "train.steps_per_epoch=3", "train.save_every=0", "train.sample_every=0"]
SEQGAN = ["model.hidden=8", "model.emb=8", "model.rollout_num=2", "model.d_emb=4", "model.d_filter_sizes=[2, 3]",
          "model.d_num_filters=[4, 4]", "model.pre_epochs=1", "model.dis_pre_epochs=1", "model.total_batch=2",
          "model.rounds_per_epoch=1", "model.pg_batch=4", "model.mle_steps=1", "model.d_steps=1",
          "train.eval_samples=20", "data.seq_len=16", "train.batch=8", "train.steps_per_epoch=2",
          "train.save_every=0", "train.sample_every=0"]
MASKED = ["model.d_model=16", "model.n_layers=1", "model.n_heads=2", "model.context_order=2", "model.context_refit=200",
          "model.context_min_bases=0", "train.eval_samples=20", "data.seq_len=20", "train.batch=16",
          "train.steps_per_epoch=3", "train.save_every=0", "train.sample_every=0"]


def cfg_for(family, data, *sets):
    return resolve(family, get_family(family).Config, {"data": {"path": str(data)}}, parse_set(list(sets)))


def test_lr_d_zero_freezes_the_discriminator(genome, tmp_path):
    # before: `lr_d or group_lr or lr_g` gave D the generator's learning rate when lr_d was 0
    run = Run(cfg_for("stacked", genome, *STACKED, "train.epochs=1", "train.lr_d=0", "train.lr_g=0.01"), save=False)
    before = {k: v.clone() for k, v in run.members[0].state_dict().items()}
    res = run.run()
    assert run.opts[0]["d"].param_groups[0]["lr"] == 0 and "d_loss" in res.history[0]
    after = run.members[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("D1.", "D2.")))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("G."))


def test_bagged_members_count_their_own_steps(genome, monkeypatch):
    # before: one step counter ran on across members, so member 2's warm-up and adv_every shifted
    seen = []
    real_step = Markov.train_step

    def spy(self, nets, batch, ctx):
        seen.append((id(nets), ctx.step))
        return real_step(self, nets, batch, ctx)

    monkeypatch.setattr(Markov, "train_step", spy)
    res = train(cfg_for("markov", genome, "train.epochs=2", "train.bagging=true", "train.n_models=3",
                        "data.seq_len=24", "train.batch=64", "train.eval_samples=20"), save=False)
    per_member = {}
    for nid, step in seen:
        per_member.setdefault(nid, []).append(step)
    assert len(per_member) == 3 and len(res.ensemble.members) == 3
    n = len(seen) // 3
    assert all(steps == list(range(n)) for steps in per_member.values())


def test_analyze_with_only_data_compares_against_held_out_blocks(tmp_path):
    # before: the "held-out" reference was every window of --data, training windows included, so the
    # nearest-identity of real sequences to the training set read 1.0000
    path = tmp_path / "random.fasta"
    path.write_text(">r\n" + random_dna(30_000, seed=3) + "\n")
    write_fasta(tmp_path / "g.fasta", [random_dna(40, seed=s) for s in range(50)])
    assert main(["--mode", "analyze", "--generated", "g.fasta", "--data", str(path), "--output-dir", "an"]) == 0
    m = json.loads((tmp_path / "an/metrics.json").read_text())
    from analysis.judge import heldout_windows

    split = load_sequences(path, 40, val_fraction=0.2, seed=42)  # the held-out blocks, in windows every 10 bases
    assert m["n_real"] == heldout_windows(split.val_segments, 40, 10).shape[0] > split.val.shape[0] > 0
    assert m["nn_identity_mean_ref"] < 0.8  # random DNA: a held-out window matches no training window


def test_budget_stops_the_run_and_says_so(genome, caplog):
    caplog.set_level(logging.INFO, logger="dnagan")
    res = train(cfg_for("stacked", genome, *STACKED, "model.adv_weight=0", "train.epochs=100000",
                        "train.time_budget=2"), save=False)
    assert 1 <= res.epochs_done < 100000
    # the closing fit (the n-gram refit) ran inside the budget, after the last epoch
    assert "refit_kept" in res.history[-1]
    assert "time budget of 2 s reached" in caplog.text


def test_slow_training_steps_do_not_inflate_the_time_kept_for_the_closing_fit(genome, monkeypatch):
    """The closing fit is priced at the held-out pass's rate, not a slow training step's (before:
    steps of 0.5 s kept the whole budget back and the run stopped after its first step)."""
    fam = type(get_family("stacked"))
    real_step = fam.train_step

    def slow(self, nets, batch, ctx):
        time.sleep(0.5)
        return real_step(self, nets, batch, ctx)

    monkeypatch.setattr(fam, "train_step", slow)
    run = Run(cfg_for("stacked", genome, *STACKED, "model.adv_weight=0", "train.epochs=100000",
                      "train.time_budget=10"), save=False)
    res = run.run()
    assert run.eval_rate > 0 and 0 < run.reserve < 3
    assert res.history[-1]["elapsed_s"] > 6 and "refit_kept" in res.history[-1]
    # the windows counted for that rate are the engine's, not a column of the log or metrics.csv
    assert all("val_passes" not in row for row in res.history) and "val_nll" in res.history[-1]


@pytest.mark.parametrize("per_epoch", [3, 5])
def test_a_step_that_would_not_fit_in_the_budget_is_not_started(genome, monkeypatch, per_epoch):
    """The budget looks one step ahead at the last measured step time (before: it was read only after
    a step, and seqgan's --budget 900 run at 1,000 bp, whose adversarial rounds take ~27 s each,
    trained 973 s). On the engine's clock each step takes 1 s and nothing else takes time: under a
    3.5-s budget three steps fit and the fourth is not started, whether it would begin an epoch
    (3 steps an epoch) or go on with one (5 steps an epoch)."""
    import types

    import train.engine as E
    clock = [1000.0]
    monkeypatch.setattr(E, "time", types.SimpleNamespace(time=lambda: clock[0], strftime=time.strftime))
    fam = type(get_family("stacked"))
    real_step = fam.train_step
    ends = []

    def step(self, nets, batch, ctx):
        clock[0] += 1.0
        ends.append(clock[0])
        return real_step(self, nets, batch, ctx)

    monkeypatch.setattr(fam, "train_step", step)
    run = Run(cfg_for("stacked", genome, *STACKED, "model.adv_weight=0", "model.ngram_order=0",
                      "train.epochs=100000", "train.time_budget=3.5", f"train.steps_per_epoch={per_epoch}"),
              save=False)
    res = run.run()
    assert len(ends) == 3 and ends[-1] - run.t0 == pytest.approx(3.0)
    assert run.reserve == 0.0 and run.step_s == pytest.approx(1.0)
    assert res.epochs_done == 1


@pytest.mark.parametrize("refit", [True, False])
def test_the_time_an_epoch_spends_after_its_steps_is_kept_back_from_the_budget(genome, monkeypatch, refit):
    """The held-out pass and the monitoring sample run after an epoch's steps stop at budget - reserve;
    the reserve now holds the last epoch's share of them too, with or without a closing fit (before:
    masked's last epoch on S. suis ended 12 s into the closing fit's time and its refit was cut)."""
    fam = type(get_family("stacked"))
    real_eval = fam.evaluate

    def slow_eval(self, nets, ctx):
        time.sleep(0.3)
        return real_eval(self, nets, ctx)

    monkeypatch.setattr(fam, "evaluate", slow_eval)
    extra = [] if refit else ["model.ngram_order=0"]
    run = Run(cfg_for("stacked", genome, *STACKED, "model.adv_weight=0", "train.epochs=100000",
                      "train.time_budget=4", *extra), save=False)
    res = run.run()
    assert (run.closing is not None) == refit
    assert run.tail_s >= 0.3 and run.reserve >= run.tail_s
    if refit:
        assert run.reserve > run.tail_s  # and the fit's own price on top
    else:
        assert run.reserve == pytest.approx(run.tail_s)
    assert res.epochs_done >= 1


def test_closing_refit_stops_at_its_deadline():
    """Under --budget the refit's L-BFGS runs in rounds and stops at the first one past its deadline
    (stop 28: masked's refit overran a 900-s budget by 108 s on a slow machine); with a far deadline
    it ends where the one-call fit without a deadline does."""
    from models.blocks import REFIT_ITERS, REFIT_ROUND, lbfgs_until

    def solve(deadline):
        torch.manual_seed(0)
        scale = torch.logspace(0, 3, 200)  # ill-conditioned: far from converged after one round
        target = torch.randn(200)
        w = torch.zeros(200, requires_grad=True)
        opt = torch.optim.LBFGS([w], lr=1.0, max_iter=REFIT_ITERS if deadline is None else REFIT_ROUND,
                                max_eval=REFIT_ITERS * 5 // 4, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = (scale * (w - target) ** 2).sum()
            loss.backward()
            return loss
        return lbfgs_until(opt, closure, w, deadline), w.detach()

    cut, w_cut = solve(time.time() - 1)  # already past: one round, then stop
    assert cut == {"refit_iters": REFIT_ROUND, "refit_cut": 1.0}
    free, w_free = solve(None)
    assert free["refit_iters"] > REFIT_ROUND and free["refit_cut"] == 0.0
    far, w_far = solve(time.time() + 3600)
    assert far["refit_cut"] == 0.0 and torch.allclose(w_far, w_free, atol=1e-5)
    assert (w_cut - w_free).abs().max() > 1e-3  # the cut fit is a different (earlier) point


def test_closing_fits_get_deadlines_inside_the_budget(genome, monkeypatch):
    """Each closing fit under --budget is told to end by its share of what is left of the budget
    (the last epoch's fit, then the best epoch's where that is an earlier one); none without."""
    fam = type(get_family("stacked"))
    real = fam.closing_fit
    seen = []

    def recording(self, cfg):
        closing = real(self, cfg)
        inner = closing.fit

        def fit(nets, x, y, ctx):
            seen.append((time.time(), ctx.deadline))
            return inner(nets, x, y, ctx)
        return type(closing)(windows=closing.windows, fit=fit, undo=closing.undo)

    monkeypatch.setattr(fam, "closing_fit", recording)
    run = Run(cfg_for("stacked", genome, *STACKED, "model.adv_weight=0", "train.epochs=100000",
                      "train.time_budget=3"), save=False)
    res = run.run()
    assert len(seen) == 1 and "refit_cut" in res.history[-1]
    started, deadline = seen[0]
    # its share of what is left (one fit: the budget's end); never past that end, and when the budget
    # is already spent, the moment the fit was given its deadline (just before it started; a loaded
    # machine may take milliseconds between the two, so no 1-ms window here)
    end = run.t0 + 3
    assert deadline <= max(end, started) + 1e-6 and deadline >= min(started, end) - 0.5
    seen.clear()
    Run(cfg_for("stacked", genome, *STACKED, "model.adv_weight=0", "train.epochs=2"), save=False).run()
    assert len(seen) == 1 and seen[0][1] is None


def test_closing_fit_is_priced_before_the_first_epoch(genome, monkeypatch):
    """Under --budget the closing fit's time is kept back from the first step on (before: nothing
    until the first epoch ended, so a budget shorter than an epoch plus the fit overran by the fit),
    and pricing it draws nothing from the run's random streams."""
    fam = type(get_family("stacked"))
    real_step = fam.train_step
    first = []

    def spy(self, nets, batch, ctx):
        if not first:
            first.append((run.reserve, ctx.generator.get_state().clone(), torch.random.get_rng_state().clone()))
        return real_step(self, nets, batch, ctx)

    monkeypatch.setattr(fam, "train_step", spy)
    sets = [*STACKED, "model.adv_weight=0", "train.epochs=1"]
    run = Run(cfg_for("stacked", genome, *sets, "train.time_budget=600"), save=False)
    run.run()
    budgeted = first.pop()
    run = Run(cfg_for("stacked", genome, *sets), save=False)
    run.run()
    free = first.pop()
    assert budgeted[0] > 0 and free[0] == 0
    assert torch.equal(budgeted[1], free[1]) and torch.equal(budgeted[2], free[2])


def test_a_budget_spent_by_the_held_out_pass_starts_no_further_epoch(genome, monkeypatch):
    """The budget is read again when an epoch ends (before: only after training steps, so a budget
    spent by the held-out pass and monitor started one more epoch, stopped after one step and
    monitored it: masked's human 900-s run, 22 s past its budget)."""
    fam = type(get_family("stacked"))
    real = fam.evaluate

    def slow(self, nets, ctx):
        if ctx.step > 0:  # the epoch's held-out pass, not the pass that prices the closing fit
            time.sleep(2.5)
        return real(self, nets, ctx)

    monkeypatch.setattr(fam, "evaluate", slow)
    res = train(cfg_for("stacked", genome, *STACKED, "model.adv_weight=0", "train.epochs=100",
                        "train.time_budget=2"), save=False)
    assert res.epochs_done == 1


def test_resume_goes_on_with_the_budget_clock(genome, tmp_path):
    """--budget is for the whole run: a run interrupted with its budget nearly spent ends after one
    more epoch when resumed (before: the clock restarted and the resumed run took a whole budget)."""
    sets = [*STACKED, "model.adv_weight=0", "train.time_budget=60"]
    part = train(cfg_for("stacked", genome, *sets, "train.epochs=1", f"train.checkpoint_dir={tmp_path}/c",
                         f"train.run_dir={tmp_path}/r"))
    ck = ckpt_io.load(part.last_path)
    assert 0 < ck["elapsed_s"] < 60 and ck["reserve_s"] > 0
    ck["elapsed_s"] = 60.0 - ck["reserve_s"] - 1e-3  # as if interrupted just before its budget was spent
    ckpt_io.save(part.last_path, ck)
    resumed = train(cfg_for("stacked", genome, *sets, "train.epochs=100000"), resume=str(part.last_path))
    assert resumed.epochs_done == 2
    assert ckpt_io.load(resumed.last_path)["elapsed_s"] >= 60.0 - ck["reserve_s"]
    # and a clock with time left trains on
    ck["elapsed_s"] = 0.0
    ckpt_io.save(part.last_path, ck)
    more = train(cfg_for("stacked", genome, *sets, "train.epochs=4"), resume=str(part.last_path))
    assert more.epochs_done == 4


@pytest.mark.parametrize("family,sets,total", [("gumbel", GUMBEL, 3), ("seqgan", SEQGAN, 4)])
def test_resume_of_a_gan_family_is_exact(genome, tmp_path, family, sets, total):
    """Interrupted after epoch total-1 (for seqgan: in the adversarial phase of its plan, the rollout
    net's EMA state in the checkpoint) and resumed, the run ends where the uninterrupted one does,
    bit for bit."""
    full = train(cfg_for(family, genome, *sets, f"train.epochs={total}", f"train.checkpoint_dir={tmp_path}/a",
                         f"train.run_dir={tmp_path}/ra"))
    part = train(cfg_for(family, genome, *sets, f"train.epochs={total - 1}", f"train.checkpoint_dir={tmp_path}/b",
                         f"train.run_dir={tmp_path}/rb"))
    resumed = train(cfg_for(family, genome, *sets, f"train.epochs={total}"), resume=str(part.last_path))
    a, b = ckpt_io.load(full.last_path), ckpt_io.load(resumed.last_path)
    assert a["epoch"] == b["epoch"] == total and a["steps"] == b["steps"]
    for k, v in a["members"][0].items():
        assert torch.equal(v, b["members"][0][k]), k
    assert [r["val_score"] for r in full.history] == pytest.approx([r["val_score"] for r in resumed.history])


def test_family_flags_are_declared_by_families_not_main():
    text = (ROOT / "main.py").read_text()
    assert not re.search(r"--order|--disc|--condition|--skip", text)
    assert not re.search(r"signal|kind == ", text)  # data kinds are decided in utils/modality alone


@pytest.mark.parametrize("argv,msg", [
    (["--model", "stacked", "--order", "3"], "--order does not apply to the 'stacked' family (it is markov's)"),
    (["--model", "markov", "--disc", "lstm"], "--disc does not apply to the 'markov' family (it is gumbel's)"),
    (["--model", "markov", "--condition", "gc"], "--condition does not apply to the 'markov' family"),
])
def test_a_flag_given_to_the_wrong_family_is_one_line(argv, msg, capsys):
    assert main(["--mode", "train", *argv, "--show-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err


def test_family_flags_reach_the_config(capsys):
    assert main(["--model", "gumbel", "--disc", "lstm", "--condition", "gc", "--show-config"]) == 0
    out = capsys.readouterr().out
    assert "disc: lstm" in out and "condition: gc" in out


def test_family_interface_is_small():
    methods = [k for k, v in vars(Family).items() if callable(v) and not k.startswith("__")]
    assert len(methods) <= 10, methods
    for name, cls in FAMILIES.items():
        assert not hasattr(cls, "autoregressive") and not hasattr(cls, "generator_update"), name


def test_old_checkpoint_format_is_refused_by_version(tmp_path, capsys):
    p = tmp_path / "old.pt"
    torch.save({"format": 1, "family": "markov", "members": []}, p)
    assert main(["--mode", "gen", "--checkpoint", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint format 1" in err and "reads format 2" in err


def test_distribution_metrics_known_values():
    a = np.array([[0.0, 1.0, 2.0, 3.0]])
    assert DS.ks(a, a)[0] == 0.0 and DS.ks(a, a + 10)[0] == 1.0
    assert DS.ks(a, a + 1)[0] == pytest.approx(0.25)  # one of four values lies beyond the other set
    assert DS.wasserstein(a, a + 2.5) == pytest.approx(2.5)
    assert DS.js_histogram(a, a) == pytest.approx(0.0) and DS.js_histogram(a, a + 10) == pytest.approx(1.0)
    alt = np.array([[1.0, -1.0] * 5, [-1.0, 1.0] * 5])  # pooled mean 0, variance 1
    np.testing.assert_allclose(DS.autocorrelation(alt, 3), [-1.0, 1.0, -1.0])
    assert DS.autocorrelation(np.ones((3, 5)), 2).tolist() == [0.0, 0.0]
    d = DS.diversity(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]))
    # pairs: (0,1) 5, (0,2) 0, (1,2) 5 -> mean 10/3, per sqrt(2) positions; two distinct rows of three
    assert d["mean_pairwise_distance"] == pytest.approx(10 / 3 / np.sqrt(2)) and d["unique_fraction"] == pytest.approx(2 / 3)
    mu, phi, sigma = DS.fit_ar1(DS.sample_ar1((2.0, 0.6, 0.5), 4000, 30, seed=0))
    assert mu == pytest.approx(2.0, abs=0.02) and phi == pytest.approx(0.6, abs=0.02) and sigma == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("clock", [False, True])
def test_lr_clock_decays_by_the_budget_spent_not_by_epochs(genome, clock):
    """train.lr_clock under --budget: after an epoch each rate is lr0 * gamma^(epochs x budget
    fraction spent), the epoch plan's whole decay reached when the budget ends; without it
    ExponentialLR's one step of gamma."""
    run = Run(cfg_for("stacked", genome, *STACKED, "model.adv_weight=0", "train.epochs=10", "train.lr_gamma=0.5",
                      "train.time_budget=100", f"train.lr_clock={str(clock).lower()}"), save=False)
    run.build_optimizers()
    run.budget_used = lambda: 0.3
    lr0 = {k: [g["lr"] for g in o.param_groups] for k, o in run.opts[0].items()}
    run.decay_lr(0)
    for _ in range(2 if clock else 0):  # the clock sets the rate; more epochs at the same time change nothing
        run.decay_lr(0)
    factor = 0.5 ** (10 * 0.3) if clock else 0.5
    for k, o in run.opts[0].items():
        assert [g["lr"] for g in o.param_groups] == pytest.approx([v * factor for v in lr0[k]]), k


@pytest.mark.parametrize("family,sets,rows", [("stacked", STACKED, (20, 20)), ("masked", MASKED, (1, 19))])
def test_the_closing_fit_is_priced_with_its_solver(genome, monkeypatch, family, sets, rows):
    """Under --budget the closing fit's price holds its solver's time, measured on the rows the fit
    reads (every next base; masked: its masked positions), not only the network's passes (before:
    masked's refit on S. suis took 64 s of the 48 s kept back, gumbel's was cut after 10 of 100
    iterations)."""
    from models import blocks
    from train import engine

    measured = []
    real = blocks.price_refit

    def spy(*a, **k):
        measured.append(real(*a, **k))
        return measured[-1][0], 0.05, measured[-1][2]  # a slow solver: 0.05 s per row
    monkeypatch.setattr(blocks, "price_refit", spy)
    run = Run(cfg_for(family, genome, *sets, "train.epochs=1", "train.time_budget=600"), save=False)
    run.run()
    (per_window, per_row, frozen_s), = measured
    assert rows[0] <= per_window <= rows[1] and per_row > 0 and run.frozen_s == frozen_s > 0
    fit, val, m = run.fit_windows()
    assert run.solver_s == pytest.approx(per_window * 0.05)
    assert run.reserve >= engine.FIT_MARGIN * run.solver_s * fit * m  # kept back for the solver
    free = Run(cfg_for(family, genome, *sets, "train.epochs=1"), save=False)
    free.run()
    assert free.solver_s == 0 and len(measured) == 1  # no budget: nothing priced


@pytest.mark.parametrize("family,sets,option", [("stacked", STACKED, "ngram_refit_priced_iters"),
                                                ("masked", MASKED, "context_refit_priced_iters")])
def test_the_solver_is_priced_at_the_familys_usual_iteration_count(genome, monkeypatch, family, sets, option):
    """model.ngram_refit_priced_iters (masked: model.context_refit_priced_iters) scales the solver's
    price (the autoregressive families' refits converge in 32-46 of their 100 iterations on S. suis:
    priced at 100, seqgan's steps stopped 50 s early at --budget 300); out of 1..100 it is a config
    error."""
    import types

    from models import blocks

    ticks = iter(range(10**6))
    monkeypatch.setattr(blocks, "time", types.SimpleNamespace(time=lambda: float(next(ticks))))  # 1 s a reading
    solver = {}
    for iters in (40, 100):
        run = Run(cfg_for(family, genome, *sets, f"model.{option}={iters}", "train.epochs=1",
                          "train.time_budget=600"), save=False)
        run.run()
        solver[iters] = run.solver_s
    assert solver[100] > 0 and solver[40] == pytest.approx(0.4 * solver[100])
    with pytest.raises(ConfigError, match=option):
        cfg_for(family, genome, *sets, f"model.{option}=0")
