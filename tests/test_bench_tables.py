"""bench/defaults_table.py: the current-defaults tables are read from run JSONs, with three-judge
re-scores taking the place of one judge's figure and targets compared like with like."""
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import defaults_table as T  # noqa: E402


def row(genome, name, auc, js=0.0003, **extra):
    return {"genome": genome, "set": name, "c2st_auc": auc, "c2st_lo": auc - 0.01, "c2st_hi": auc + 0.01,
            "js_4mer": js, **extra}


@pytest.fixture
def results(monkeypatch):
    docs = {
        "base": {"git_commit": "a" * 40, "rows": [row("g", T.FLOOR, 0.51), row("g", T.MARKOV3, 0.80),
                                                 row("g", T.MARKOV5, 0.78, js=0.0003)]},
        "judge3": {"git_commit": "b" * 40, "rows": [row("g", T.FLOOR, 0.52), row("g", "seqgan_900", 0.575)]},
        "old": {"git_commit": "c" * 40, "rows": [row("g", "seqgan", 0.40)]},
        "new": {"git_commit": "d" * 40, "rows": [row("g", "seqgan", 0.555, made_by={"git_commit": "e" * 40}),
                                                row("g", "masked", 0.60, js=0.0007)]},
    }
    monkeypatch.setattr(T, "load", lambda name: docs[name])
    monkeypatch.setattr(T, "BASELINES", "base")
    monkeypatch.setattr(T, "BASELINE_RESCORES", {"g": {T.FLOOR: ("judge3", T.FLOOR, "base")}})
    monkeypatch.setattr(T, "SOURCES", {(b, f): ["new", "old"] for b in (300, 900) for f in ("seqgan", "masked", "gumbel")})
    return docs


def test_newest_source_wins_and_one_judge_rows_meet_the_one_judge_floor(results, monkeypatch):
    monkeypatch.setattr(T, "RESCORES", {})
    base = T.baselines("g")
    assert base[T.FLOOR]["judges"] == 3 and base[T.FLOOR]["c2st"] == 0.52 and base[T.FLOOR]["c2st_1"] == 0.51
    r = T.family_row(900, "g", "seqgan", base)
    assert r["source"] == "new" and r["commit"] == "eeeeeee" and r["judges"] == 1
    assert r["gap_to_floor"] == pytest.approx(0.045) and r["target_met"]  # against 0.51, not 0.52


def test_a_three_judge_rescore_replaces_the_figure_and_meets_the_three_judge_floor(results, monkeypatch):
    monkeypatch.setattr(T, "RESCORES", {(900, "g", "seqgan"): ("judge3", "seqgan_900", "new")})
    r = T.family_row(900, "g", "seqgan", T.baselines("g"))
    assert r["judges"] == 3 and r["c2st"] == 0.575 and r["c2st_1"] == 0.555
    assert r["gap_to_floor"] == pytest.approx(0.055) and not r["target_met"]


def test_a_newer_baseline_run_wins_and_an_older_runs_rescore_is_not_given_to_it(results, monkeypatch):
    monkeypatch.setattr(T, "RESCORES", {})
    results["rerun"] = {"git_commit": "9" * 40, "rows": [
        row("g", T.FLOOR, 0.53, c2st_repeats=3, c2st_sd=0.01, c2st_interval="t"),
        row("g", T.MARKOV5, 0.70, js=0.0002, c2st_repeats=3, c2st_sd=0.01, c2st_interval="t")]}
    monkeypatch.setattr(T, "BASELINES_OF", {"g": ["missing", "rerun", "base"]})
    base = T.baselines("g")
    assert base[T.FLOOR]["source"] == "rerun" and base[T.FLOOR]["c2st"] == 0.53  # not judge3's re-score of base's set
    assert base[T.MARKOV5]["c2st"] == 0.70 and base[T.MARKOV3]["source"] == "base"  # a set the rerun lacks
    r = T.family_row(300, "g", "seqgan", base)  # a one-judge row; the rerun's markov-5 has only its three-judge figure
    assert r["vs_markov5"] == pytest.approx(0.555 - 0.70) and r["target_met"]
    assert not T.family_row(300, "g", "masked", base)["target_met"]  # 4-mer JS 0.0007 > 2 x the rerun's 0.0002


def test_a_300_s_target_below_the_real_floor_is_named(results, monkeypatch):
    monkeypatch.setattr(T, "RESCORES", {})
    monkeypatch.setattr(T, "GENOMES", ["g"])
    monkeypatch.setattr(T, "FAMILIES", ["seqgan"])
    assert T.targets_below_floor(T.budget_table(300)) == []  # 0.78 - 0.03 lies above the floor's 0.52
    results["base"]["rows"][2] = row("g", T.MARKOV5, 0.54)
    assert T.targets_below_floor(T.budget_table(300)) == ["g (target 0.510, floor 0.520, markov-5 0.540)"]


def test_three_judge_intervals_written_with_1_96_are_remade_with_students_t():
    """Rows of three judges written before stop 34 carry auc +- 1.96 sqrt(boot_var + sd^2 / 3): the
    table reads the bootstrap variance back and remakes the interval as the judge makes it now;
    one-judge rows and rows marked "t" are left as stored."""
    from analysis.judge import interval

    boot_var, sd = 0.004**2, 0.02
    half = 1.96 * np.sqrt(boot_var + sd**2 / 3)
    old = {"c2st_auc": 0.6, "c2st_lo": 0.6 - half, "c2st_hi": 0.6 + half, "c2st_sd": sd}
    lo, hi = T.t_interval(old, 3)
    assert hi - 0.6 == pytest.approx(0.6 - lo) == pytest.approx(interval(boot_var, sd, 3))
    assert 0.6 - lo > 1.5 * half  # the judges' spread dominates: t with about 2 degrees of freedom
    assert T.t_interval({**old, "c2st_interval": "t"}, 3) == (old["c2st_lo"], old["c2st_hi"])
    assert T.t_interval({**old, "c2st_sd": float("nan")}, 1) == (old["c2st_lo"], old["c2st_hi"])


def test_a_rescore_of_an_older_sources_set_is_not_given_to_a_newer_row(results, monkeypatch):
    """A three-judge re-score belongs to the generated set it scored: when a newer run gives the
    cell, its own figure stands (before, the older set's re-score replaced it)."""
    monkeypatch.setattr(T, "RESCORES", {(900, "g", "seqgan"): ("judge3", "seqgan_900", "old")})
    r = T.family_row(900, "g", "seqgan", T.baselines("g"))
    assert r["source"] == "new" and r["judges"] == 1 and r["c2st"] == 0.555 and "rescored_in" not in r


def test_300_s_target_needs_both_c2st_and_4mer_js_and_missing_runs_say_so(results, monkeypatch):
    monkeypatch.setattr(T, "RESCORES", {})
    base = T.baselines("g")
    ok = T.family_row(300, "g", "seqgan", base)
    assert ok["vs_markov5"] == pytest.approx(-0.225) and ok["target_met"]
    js_miss = T.family_row(300, "g", "masked", base)  # C2ST 0.18 below markov-5, 4-mer JS 2.3x its
    assert js_miss["vs_markov5"] < -0.03 and not js_miss["target_met"]
    assert T.family_row(300, "g", "gumbel", base) == {"genome": "g", "set": "gumbel", "note": "not run"}
    assert "not run" in T.markdown([T.family_row(300, "g", "gumbel", base)], 300)


def test_a_900_s_row_with_the_300_s_set_is_flagged_and_both_take_the_three_judge_figure(results, monkeypatch):
    """Equal 4-mer and 6-mer JS at both budgets: the same sequences (the run's best came before 300 s),
    so the one-judge 300-s row takes the 900-s row's three-judge figure and its targets are recomputed;
    a row with another set is left alone."""
    monkeypatch.setattr(T, "RESCORES", {(900, "g", "seqgan"): ("judge3", "seqgan_900", "new")})
    monkeypatch.setattr(T, "GENOMES", ["g"])
    monkeypatch.setattr(T, "FAMILIES", ["seqgan", "masked"])
    results["new"]["rows"] = [row("g", "seqgan", 0.555, js_6mer=0.002), row("g", "masked", 0.60, js=0.0007, js_6mer=0.003)]
    short, long = T.budget_table(300), T.budget_table(900)
    long[-1]["js6"] = 0.0031  # masked: another set at 900 s
    assert T.mark_same_sets(short, long) == ["g/seqgan"]
    s300 = next(r for r in short if r["set"] == "seqgan")
    s900 = next(r for r in long if r["set"] == "seqgan")
    assert s900["same_set_as_300"] and s300["same_set_as_900"]
    assert s300["judges"] == 3 and s300["c2st"] == 0.575 and s300["c2st_1"] == 0.555
    assert s300["vs_markov5"] == pytest.approx(0.575 - 0.78)  # markov-5 has no three-judge figure: its one
    assert "the 300-s set" in T.markdown(long, 900)
    m300 = next(r for r in short if r["set"] == "masked")
    assert m300["judges"] == 1 and "same_set_as_900" not in m300


def test_printing_one_budget_gives_the_cells_of_the_full_run(results, monkeypatch, capsys):
    """`--budgets 300` prints the 300-s table as the full run does: a 300-s cell whose set was judged
    again at 900 s keeps that figure (stop 41 found masked's 300-s mean 0.610 printed alone, 0.614
    in the full run)."""
    monkeypatch.setattr(T, "RESCORES", {(900, "g", "seqgan"): ("judge3", "seqgan_900", "new")})
    monkeypatch.setattr(T, "GENOMES", ["g"])
    monkeypatch.setattr(T, "FAMILIES", ["seqgan"])
    results["new"]["rows"] = [row("g", "seqgan", 0.555, js_6mer=0.002)]
    written = []
    monkeypatch.setattr(T, "write_json", lambda name, doc: written.append(doc))
    T.main([])
    full = capsys.readouterr().out
    T.main(["--budgets", "300"])
    alone = capsys.readouterr().out
    assert "--budget 900" not in alone and alone.strip() in full
    assert "seqgan: mean C2ST 0.575" in alone  # the three-judge figure of the same set
    assert written[0] == written[1] and set(written[1]["tables"]) == {"300", "900"}


def test_the_phased_baseline_gives_each_family_its_difference_where_it_was_run(results, monkeypatch):
    monkeypatch.setattr(T, "RESCORES", {})
    assert T.PHASED not in T.baselines("g")  # not run: no row and no column
    assert "vs_phased" not in T.family_row(300, "g", "seqgan", T.baselines("g"))
    results[T.PHASED_SOURCES[-1]] = {"git_commit": "f" * 40,
                                "rows": [row("g", T.PHASED, 0.60, c2st_repeats=3, c2st_sd=0.01, c2st_interval="t")]}
    base = T.baselines("g")
    assert base[T.PHASED]["judges"] == 3 and base[T.PHASED]["c2st"] == 0.60
    r = T.family_row(300, "g", "seqgan", base)
    assert r["vs_phased"] == pytest.approx(0.555 - 0.60) and r["target_met"]  # the target stays markov-5's
    assert "-0.045" in T.markdown([r], 300)


def test_a_genomes_row_keeps_the_delivered_checkpoints_fit_beside_the_last_epochs(tmp_path):
    """bench/genomes.py's run summary: the last metrics row's budget figures, and the best_* figures
    of best.pt's own fit where best.pt is an earlier epoch's; blank cells are left out."""
    import genomes
    from train.engine import write_metrics

    write_metrics(tmp_path / "metrics.csv", [
        {"epoch": 1, "val_nll": 1.30, "lr_g": 1e-3},
        {"epoch": 2, "val_nll": 1.31, "lr_g": 9e-4, "refit_skipped": 1.0, "best_epoch": 1.0,
         "best_refit_iters": 40.0, "best_refit_kept": 1.0}])
    assert genomes.run_summary(tmp_path) == {"epoch": 2, "val_nll": 1.31, "refit_skipped": 1.0, "best_epoch": 1.0,
                                             "best_refit_iters": 40.0, "best_refit_kept": 1.0}
    write_metrics(tmp_path / "metrics.csv", [{"epoch": 1, "val_nll": 1.30, "refit_iters": 12.0}, {"epoch": 2, "val_nll": 1.29}])
    assert genomes.run_summary(tmp_path) == {"epoch": 2, "val_nll": 1.29}


def test_a_genomes_row_lists_the_epochs_the_monitor_judged(tmp_path):
    """run_summary carries the per-epoch judge's figures (train/judging.py) read back from metrics.csv,
    where the epochs it did not judge have blank cells."""
    import genomes
    from train.engine import write_metrics

    write_metrics(tmp_path / "metrics.csv", [
        {"epoch": 1, "val_nll": 1.30},
        {"epoch": 2, "val_nll": 1.29, "val_c2st": 0.71, "val_c2st_lo": 0.68, "val_c2st_hi": 0.74, "val_c2st_n": 500,
         "c2st_floor": 0.55, "judge_s": 1.5},
        {"epoch": 3, "val_nll": 1.28},
        {"epoch": 4, "val_nll": 1.27, "val_c2st": 0.64, "val_c2st_lo": 0.61, "val_c2st_hi": 0.67, "val_c2st_n": 500,
         "c2st_floor": 0.55, "judge_s": 0.75}])
    s = genomes.run_summary(tmp_path)
    assert s["judged_epochs"] == 2 and s["judge_s"] == 2.25
    assert s["judged"] == [[2, 0.71, 0.68, 0.74, 0.55], [4, 0.64, 0.61, 0.67, 0.55]]


def test_the_floor_of_a_grouped_judge_carries_each_windows_training_segment(tmp_path):
    """bench/genomes.py --grouped_folds: the floor's windows are real training windows, each with the
    training segment it lies in (the training blocks between two held-out ones), so the judge's folds
    keep a segment's windows together on that side too;
    without it, training windows with no groups, as the tables were judged."""
    import genomes
    from conftest import random_dna
    from utils.sequences import load_sequences

    (tmp_path / "g.fasta").write_text(">r\n" + random_dna(20_000, seed=3) + "\n")
    data = load_sequences(tmp_path / "g.fasta", 70, val_fraction=0.2, seed=0, block_size=500)
    windows, groups = genomes.floor_set(data, 150, 0, grouped=True)
    assert windows.shape == (150, 70) and groups.shape == (150,) and len(set(groups.tolist())) == len(data.train_segments) == 8
    for w, g in zip(windows[:20], groups[:20]):  # each window lies in the training segment it is grouped by
        seg = np.asarray(data.train_segments[g])
        assert any(np.array_equal(seg[i:i + 70], w) for i in range(0, len(seg) - 69, 70))
    plain, none = genomes.floor_set(data, 150, 0, grouped=False)
    assert none is None and plain.shape == (150, 70)
    assert {bytes(r) for r in plain} <= {bytes(r) for r in data.train}


def test_genomes_gives_the_judge_the_floors_groups_and_no_other_rows(tmp_path, monkeypatch):
    """bench/genomes.py --grouped_folds: the floor's row reaches the judge with its windows' training
    segments and every row with the held-out windows' blocks; a trained set (here markov-5's, stood in
    for) with no groups, even when its sequences equal the floor's."""
    import genomes
    from conftest import random_dna

    (tmp_path / "g.fasta").write_text(">r\n" + random_dna(20_000, seed=3) + "\n")
    monkeypatch.setattr(genomes, "GENOMES", {"tiny": str(tmp_path / "g.fasta")})
    monkeypatch.setattr(genomes, "work", tmp_path / "work")
    written = {}
    monkeypatch.setattr(genomes, "write_json", lambda name, payload: written.update({name: payload}))
    floors = []
    real_floor_set = genomes.floor_set
    monkeypatch.setattr(genomes, "floor_set", lambda *a: floors.append(real_floor_set(*a)) or floors[-1])
    # the trained set is the floor's own windows, a copy: groups follow the row, not the sequences
    monkeypatch.setattr(genomes, "trained_set", lambda *a, **k: (floors[-1][0].copy(), 1.0, {}))
    seen = {}
    monkeypatch.setattr(genomes.M, "compare", lambda gen, ref, **kw: seen.setdefault(len(seen), kw) and {})
    monkeypatch.setattr(sys, "argv", ["genomes.py", "--genomes", "tiny", "--families", "--baselines", "floor", "markov-5",
                                      "--n", "200", "--block_size", "500", "--grouped_folds", "--tag", "t"])
    genomes.main()
    floor_kw, markov_kw = seen[0], seen[1]
    assert np.array_equal(floor_kw["gen_groups"], floors[0][1]) and markov_kw["gen_groups"] is None
    assert floor_kw["ref_groups"] is not None and np.array_equal(floor_kw["ref_groups"], markov_kw["ref_groups"])
    assert [r["set"] for r in written["genomes_300_t"]["rows"]] == ["real train windows (floor)", "markov-5"]
