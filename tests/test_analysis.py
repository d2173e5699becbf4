import base64
import json
import sys

import numpy as np
import pytest

from analysis import compare as C
from analysis import metrics as M
from analysis.report import FIGURE_TEXT, READINGS, analyze, report_metrics
from conftest import ROOT
from main import main
from utils.sequences import write_fasta, decode


def rand(n, L, seed=0, p=None):
    return np.random.default_rng(seed).choice(4, size=(n, L), p=p).astype(np.uint8)


def test_report_metrics_known_answers_identical_disjoint_all_a():
    a = rand(400, 40, 1)
    same, _ = report_metrics(a, a, c2st=False, progress=False)
    assert same["gc_abs_diff"] == 0 and same["gc_ks_statistic"] == 0 and same["gc_ks_pvalue"] == 1.0
    assert all(same[f"js_{k}mer"] == 0 for k in range(1, 7))
    assert same["composition"] == same["composition_ref"] and same["homopolymer_runs"] == same["homopolymer_runs_ref"]
    all_a = np.zeros((50, 40), np.uint8)
    gc_only = rand(50, 40, 2, p=[0, 0.5, 0.5, 0])  # shares no base with all-A
    dis, _ = report_metrics(all_a, gc_only, c2st=False, progress=False)
    assert dis["js_1mer"] == pytest.approx(1.0) and dis["js_4mer"] == pytest.approx(1.0)
    assert dis["gc_mean"] == 0 and dis["gc_ref"] == 1 and dis["gc_ks_statistic"] == 1.0
    assert dis["composition"] == {"A": 1.0, "C": 0.0, "G": 0.0, "T": 0.0}
    assert dis["dinucleotides"]["AA"] == 1.0 and dis["unique_fraction"] == pytest.approx(1 / 50)
    assert dis["homopolymer_runs"][-1] == 1.0  # every run is 40 bases: the >= 12 bin
    assert dis["diversity"] == 0.0
    half = np.array([[1, 2, 0, 3] * 10] * 20, np.uint8)  # GC exactly 0.5
    r, _ = report_metrics(half, a, c2st=False, progress=False)
    assert r["gc_mean"] == 0.5 and r["gc_std"] == 0


def test_analyze_writes_every_figure_and_an_html_with_all_of_them(tmp_path):
    real = rand(300, 30, 3, p=[0.3, 0.2, 0.2, 0.3])
    gen = rand(200, 30, 4)
    train = rand(500, 30, 5, p=[0.3, 0.2, 0.2, 0.3])
    m = analyze(gen, real, tmp_path / "an", train=train, train_segments=list(train), progress=False)
    # motifs only with --motifs (tests/test_structure_memorisation.py), the confusion only with labels
    figs = set(FIGURE_TEXT) - {"motifs", "conditional_confusion"}
    for f in figs:
        assert (tmp_path / "an" / f"{f}.png").stat().st_size > 5000 or f in ("homopolymer_runs", "nn_identity", "composition")
    pngs = sorted((tmp_path / "an").glob("*.png"))
    assert len(pngs) == len(figs) and all(p.stat().st_size > 0 for p in pngs)
    page = (tmp_path / "an/report.html").read_text()
    for p in pngs:  # each figure embedded byte for byte, none linked
        assert base64.b64encode(p.read_bytes()).decode() in page
    assert 'src="data:image/png;base64,' in page and ".png\"" not in page
    for k in m:
        assert f"<td>{k}</td>" in page, k
    md = (tmp_path / "an/report.md").read_text()
    assert all(f"| {k} |" in md for k in m)
    assert set(m) <= set(READINGS) | {"composition", "composition_ref", "dinucleotides", "dinucleotides_ref",
                                      "homopolymer_runs", "homopolymer_runs_ref"}
    assert m["exact_copies"] == 0 and 0.5 < m["c2st_auc"] <= 1
    # the new sections: structure, near copies, the Fréchet distance with its floor, the power flag
    assert m["near_copies"] == 0 and m["near_copies_ref"] == 0 and m["c2st_underpowered"] is True
    assert m["fd"] > m["fd_floor"] >= 0 and m["fd_lo"] <= m["fd"] <= m["fd_hi"]
    assert 0 <= m["orf_ks"] <= 1 and m["period3"] > 0
    assert "underpowered" in md


def test_main_analyze_and_the_script_give_the_same_metrics(genome, tmp_path, monkeypatch):
    import runpy

    gen = decode(rand(60, 30, 6))
    write_fasta(tmp_path / "g.fasta", gen)
    argv = ["--generated", "g.fasta", "--data", str(genome)]
    assert main(["--mode", "analyze", *argv, "--output-dir", "a1"]) == 0
    monkeypatch.setattr(sys, "argv", ["analyze_sequences.py", *argv, "--output-dir", "a2"])
    with pytest.raises(SystemExit) as done:  # the script as typed, in-process
        runpy.run_path(str(ROOT / "analyze_sequences.py"), run_name="__main__")
    assert done.value.code == 0
    assert json.loads((tmp_path / "a1/metrics.json").read_text()) == json.loads((tmp_path / "a2/metrics.json").read_text())


def test_analyze_errors_are_one_line(genome, tmp_path, capsys):
    (tmp_path / "mixed.fasta").write_text(">a\nACGTACGTAC\n>b\nACGTAC\n")
    (tmp_path / "prot.fasta").write_text(">p\nMKVLAAGIVGQQ*\n")
    (tmp_path / "empty.fasta").write_text("")
    for f, msg in [("missing.fasta", "no such file"), ("empty.fasta", "no sequences"),
                   ("mixed.fasta", "--seq_len"), ("prot.fasta", "position")]:
        assert main(["--mode", "analyze", "--generated", f, "--data", str(genome)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0] and "Traceback" not in err[0], err
    # mixed lengths are analysed once cropped
    assert main(["--mode", "analyze", "--generated", "mixed.fasta", "--data", str(genome), "--seq_len", "6"]) == 0


def test_the_reference_is_the_held_out_blocks_in_windows_every_ref_stride_bases(genome, tmp_path):
    from analysis.judge import REF_STRIDE, reference_windows
    from utils.config import DataConfig, TrainConfig
    from utils.sequences import load_sequences

    data = load_sequences(genome, 24, val_fraction=0.2, seed=TrainConfig.seed, block_size=DataConfig().block_size)
    ref, groups, what = reference_windows(data, REF_STRIDE)
    segs = ["".join(decode(s[None])) for s in data.val_segments]
    assert ref.shape[0] == sum((len(s) - 24) // REF_STRIDE + 1 for s in segs if len(s) >= 24) > 2 * data.val.shape[0]
    assert all(any(w in seg for seg in segs) for w in decode(ref)) and "every 10 bases" in what  # held-out DNA
    assert groups is None and np.array_equal(reference_windows(data)[0], ref)  # 24 bp: random folds, stride 10
    assert "".join(decode(ref[:2])) == segs[0][:24] + segs[0][10:34]
    for stride in (0, 24):  # the non-overlapping windows, as before --ref_stride
        assert np.array_equal(reference_windows(data, stride)[0], data.val)
    nothing_held = load_sequences(genome, 24, val_fraction=0.0)
    assert reference_windows(nothing_held)[0] is nothing_held.train
    # analyze scores against them: n_real is their count, and --ref_stride 0 gives the old reference
    write_fasta(tmp_path / "g.fasta", decode(rand(40, 24, 5)))
    for extra, n in (([], ref.shape[0]), (["--ref_stride", "0"], data.val.shape[0])):
        assert main(["--mode", "analyze", "--generated", "g.fasta", "--data", str(genome), "--output-dir", "a",
                     *extra]) == 0
        assert json.loads((tmp_path / "a/metrics.json").read_text())["n_real"] == n
    write_fasta(tmp_path / "h.fasta", decode(rand(25, 24, 9)))  # --heldout: its sequences are the reference
    assert main(["--mode", "analyze", "--generated", "g.fasta", "--data", str(genome), "--heldout", "h.fasta",
                 "--output-dir", "h"]) == 0
    assert json.loads((tmp_path / "h/metrics.json").read_text())["n_real"] == 25


def test_above_70_bp_the_reference_is_every_35_bases_and_the_judge_keeps_blocks_in_one_fold(tmp_path, monkeypatch):
    from analysis.judge import REF_STRIDE_LONG, heldout_windows, reference_windows
    from conftest import random_dna
    from utils.sequences import load_sequences

    (tmp_path / "long.fasta").write_text(">r\n" + random_dna(60_000, seed=4) + "\n")
    data = load_sequences(tmp_path / "long.fasta", 100, val_fraction=0.2, seed=42)
    ref, groups, what = reference_windows(data)
    want, blocks = heldout_windows(data.val_segments, 100, REF_STRIDE_LONG, groups=True)
    assert np.array_equal(ref, want) and np.array_equal(groups, blocks) and "folds by block" in what
    assert len(set(groups.tolist())) == len(data.val_segments) >= 1 and ref.shape[0] > 2 * data.val.shape[0]
    assert reference_windows(data, 0)[1] is None  # the old reference: non-overlapping, random folds
    seen, real = [], M.c2st_row
    monkeypatch.setattr(M, "c2st_row", lambda r, g, **kw: seen.append(kw.get("real_groups")) or real(r, g, **kw))
    write_fasta(tmp_path / "g.fasta", decode(rand(30, 100, 6)))
    assert main(["--mode", "analyze", "--generated", "g.fasta", "--data", "long.fasta", "--output-dir", "a"]) == 0
    assert seen and np.array_equal(seen[-1], blocks)  # analyze's judge was given each window's block
    from compare_models import main as compare_main

    seen.clear()  # compare_models: every row's judge and the floor's (the set, the markov-5 baseline, the floor)
    assert compare_main(["--data", "long.fasta", "--generated", "g.fasta", "--no-frechet", "--output-dir", "c"]) == 0
    assert len(seen) == 3 and all(np.array_equal(g, blocks) for g in seen)


def test_analyze_and_compare_models_train_every_judge_on_the_device_asked(genome, tmp_path, monkeypatch, capsys):
    """--device reaches every C2ST of analyze (the set's, the floor's, the markov-5 baseline's) and of
    compare_models (each row's and the floor's), and metrics.json says where the judges trained; a
    --device that is not here is one line and exit code 2 before anything is written."""
    import torch

    seen, real = [], M.c2st_row
    monkeypatch.setattr(M, "c2st_row", lambda r, g, **kw: seen.append(kw.get("device")) or real(r, g, **kw))
    write_fasta(tmp_path / "g.fasta", decode(rand(40, 30, 6)))
    assert main(["--mode", "analyze", "--generated", "g.fasta", "--data", str(genome), "--device", "cpu",
                 "--output-dir", "a"]) == 0
    assert len(seen) == 3 and all(d == torch.device("cpu") for d in seen)
    assert json.loads((tmp_path / "a/metrics.json").read_text())["c2st_device"] == "cpu"
    from compare_models import main as compare_main

    seen.clear()
    assert compare_main(["--data", str(genome), "--generated", "g.fasta", "--no-frechet", "--device", "cpu",
                         "--output-dir", "c"]) == 0
    assert len(seen) == 3 and all(d == torch.device("cpu") for d in seen)
    assert "C2ST judges on cpu)" in (tmp_path / "c/comparison.md").read_text().splitlines()[0]
    if not torch.cuda.is_available():
        capsys.readouterr()
        for run in (lambda: main(["--mode", "analyze", "--generated", "g.fasta", "--data", str(genome),
                                  "--device", "cuda", "--output-dir", "b"]),
                    lambda: compare_main(["--data", str(genome), "--generated", "g.fasta", "--device", "cuda",
                                          "--output-dir", "d"])):
            assert run() == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "--device cuda" in err
        assert not (tmp_path / "b").exists() and not (tmp_path / "d").exists()


def test_the_c2st_is_read_against_the_real_floor_and_the_judges_power_at_one_size():
    from analysis.report import judge_reading, reading_notes, versus_floor

    skew = [0.35, 0.15, 0.15, 0.35]
    ref, train = rand(700, 30, 1, p=skew), rand(600, 30, 2, p=skew)  # two samples of one "genome"
    far, close = rand(900, 30, 3), rand(900, 30, 4, p=skew)  # uniform DNA, and more of the genome
    judged = []
    for gen in (far, close):
        row, _ = report_metrics(gen, ref, c2st_n=train.shape[0], progress=False)
        assert row["c2st_n"] == train.shape[0]  # the set judged at the training windows' size
        for base in (far, close):
            judged.append({**row, **judge_reading(row, ref, train, seed=0, baseline=base)})
    far_far, _, _, close_close = judged
    assert far_far["c2st_floor_lo"] <= far_far["c2st_floor"] <= far_far["c2st_floor_hi"] < 0.6  # real vs real
    assert far_far["c2st_vs_floor"] == "above the floor" and close_close["c2st_vs_floor"] == "overlaps the floor"
    assert far_far["c2st_power"] is True and close_close["c2st_power"] is False
    assert far_far["c2st_markov5"] > 0.8 and far_far["c2st_floor"] == close_close["c2st_floor"]  # one floor
    assert any("has power" in n for n in reading_notes(far_far))
    assert any("no power" in n for n in reading_notes(close_close))
    assert "c2st_markov5" not in judge_reading(row, ref, train) and reading_notes({"c2st_auc": 0.6}) == []
    with pytest.raises(ValueError, match="training windows"):  # a floor at another size than the row's
        judge_reading({"c2st_n": 601}, ref, train)
    floor = {"c2st_lo": 0.5, "c2st_hi": 0.6}
    assert versus_floor({"c2st_lo": 0.3, "c2st_hi": 0.45}, floor) == "below the floor"
    assert versus_floor({"c2st_lo": None, "c2st_hi": 0.45}, floor) == "n/a"


def test_a_requested_judge_size_never_passes_the_judges_own_cap(monkeypatch):
    import analysis.judge as J

    monkeypatch.setattr(J, "MAX_N", 40)  # 20,000 in use: analyze once judged 100,000 a side, 5x the time
    gen, ref = rand(100, 30, 1), rand(100, 30, 2)
    assert report_metrics(gen, ref, c2st_n=90, progress=False)[0]["c2st_n"] == 40
    assert M.compare(gen, ref, c2st_n=90)["c2st_n"] == 40 and M.compare(gen, ref, c2st_n=30)["c2st_n"] == 30
    from analysis.fidelity import _label_c2st

    one_label = _label_c2st(gen, ref, None, rand(90, 30, 3), seed=0)  # a label's set and its floor, one size
    assert one_label["c2st_n"] == 40 and "c2st_floor" in one_label


def test_analyze_prints_the_floor_and_trains_a_markov_5_chain_to_measure_the_judges_power(genome, tmp_path, capsys):
    write_fasta(tmp_path / "g.fasta", decode(rand(400, 24, 5)))
    argv = ["--mode", "analyze", "--generated", "g.fasta", "--data", str(genome)]
    assert main([*argv, "--output-dir", "a"]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "a/metrics.json").read_text())
    assert "real training windows read" in out and ("no power" in out or "has power" in out)
    assert m["c2st_floor_lo"] <= m["c2st_floor"] <= m["c2st_floor_hi"] and isinstance(m["c2st_power"], bool)
    assert m["c2st_markov5_lo"] <= m["c2st_markov5"] <= m["c2st_markov5_hi"]
    assert m["c2st_vs_floor"] in ("above the floor", "overlaps the floor", "below the floor")
    assert "real training windows read" in (tmp_path / "a/report.md").read_text()
    assert main([*argv, "--output-dir", "b", "--no-baseline"]) == 0  # the floor stays, the chain goes
    b = json.loads((tmp_path / "b/metrics.json").read_text())
    assert "c2st_markov5" not in b and b["c2st_floor"] == m["c2st_floor"] and b["c2st_auc"] == m["c2st_auc"]
    assert not list(tmp_path.glob("checkpoints/markov*"))  # the chain is trained in memory, never written
    # no held-out blocks: the reference is the training windows, so there is no floor to read
    assert main([*argv, "--output-dir", "c", "--val_fraction", "0"]) == 0
    assert "c2st_floor" not in json.loads((tmp_path / "c/metrics.json").read_text())


def test_analyze_a_run_directory(genome, tmp_path):
    assert main(["--mode", "train", "--model", "markov", "--data", str(genome), "--seq_len", "24", "--epochs", "2",
                 "--sample_every", "1", "--run_dir", "runs/r", "--set", "train.eval_samples=60"]) == 0
    assert main(["--mode", "analyze", "--run", "runs/r"]) == 0
    m = json.loads((tmp_path / "runs/r/analysis/metrics.json").read_text())
    assert m["n"] == 60 and m["length"] == 24 and m["exact_copies"] is not None
    assert main(["--mode", "analyze", "--run", "nowhere"]) == 2


def test_compare_orders_rows_by_auc_and_writes_its_files(genome, tmp_path):
    rows = C.sort_rows([{"model": "b", "c2st_auc": 0.8}, {"model": "a", "c2st_auc": 0.55},
                        {"model": "c", "c2st_auc": float("nan")}, {"model": "d", "c2st_auc": 0.6}])
    assert [r["model"] for r in rows] == ["a", "d", "b", "c"]
    from compare_models import main as compare_main

    write_fasta(tmp_path / "unif.fasta", decode(rand(120, 30, 7)))
    write_fasta(tmp_path / "poly_a.fasta", decode(rand(120, 30, 8, p=[0.7, 0.1, 0.1, 0.1])))
    assert compare_main(["--data", str(genome), "--generated", "unif.fasta", "poly_a.fasta",
                         "--labels", "uniform", "mostly-A", "--output-dir", "cmp"]) == 0
    import csv

    table = list(csv.DictReader((tmp_path / "cmp/comparison.csv").read_text().splitlines()))
    names = [r["model"] for r in table]
    assert set(names) == {"uniform", "mostly-A", "markov-5 baseline", "real vs real (floor)"}
    aucs = [float(r["c2st_auc"]) for r in table[:-1]]
    assert aucs == sorted(aucs) and names[-1] == "real vs real (floor)"
    assert names.index("mostly-A") > names.index("markov-5 baseline")
    # 120 sequences a side: every row is flagged underpowered; the Fréchet distance and its floor are there
    assert all("underpowered" in r["vs_floor"] for r in table[:-1])
    assert all(float(r["fd"]) >= 0 for r in table)
    by = {r["model"]: r for r in table}
    assert float(by["mostly-A"]["fd"]) > float(by["real vs real (floor)"]["fd"])
    for f in ("comparison.md", "comparison.html", "comparison_metrics.png", "comparison_kmer3_grid.png"):
        assert (tmp_path / "cmp" / f).stat().st_size > 0
    # the prototype's form: --data is the generated set
    assert compare_main(["--data", "unif.fasta", "--seq_len", "30", "--reference", str(genome),
                         "--no-baseline", "--no-c2st", "--output-dir", "cmp2"]) == 0
    assert "unif" in (tmp_path / "cmp2/comparison.md").read_text()
    assert compare_main(["--data", str(genome), "--generated", "unif.fasta", "--labels", "x", "y"]) == 2


def test_compare_judges_every_row_and_the_floor_at_one_size(genome, tmp_path, monkeypatch):
    from compare_models import main as compare_main

    write_fasta(tmp_path / "big.fasta", decode(rand(120, 30, 7)))
    write_fasta(tmp_path / "small.fasta", decode(rand(60, 30, 8)))
    seen, real = {}, C.write
    monkeypatch.setattr(C, "write", lambda rows, floor, *a, **k: seen.update(rows=rows, floor=floor) or real(rows, floor, *a, **k))
    assert compare_main(["--data", str(genome), "--generated", "big.fasta", "small.fasta", "--no-frechet",
                         "--output-dir", "c"]) == 0
    sizes = {r["model"]: r["c2st_n"] for r in seen["rows"]}
    # the baseline has as many as the largest set (120), the floor too: all are judged at the smallest, 60
    assert len(sizes) == 3 and set(sizes.values()) == {60} and seen["floor"]["c2st_n"] == 60


def test_compare_adds_the_phased_markov_baseline_when_asked(genome, tmp_path):
    from compare_models import main as compare_main

    write_fasta(tmp_path / "unif.fasta", decode(rand(60, 24, 7)))
    args = ["--data", str(genome), "--generated", "unif.fasta", "--labels", "uniform", "--no-c2st", "--no-frechet"]
    assert compare_main(args + ["--output-dir", "plain"]) == 0
    assert compare_main(args + ["--phased_baseline", "--output-dir", "phased"]) == 0
    assert compare_main(args + ["--hmm_baseline", "--output-dir", "hmm"]) == 0
    import csv

    def rows(d):
        return {r["model"]: r for r in csv.DictReader((tmp_path / d / "comparison.csv").read_text().splitlines())}

    assert "markov phased baseline" not in rows("plain")
    both = rows("phased")
    assert {"markov-5 baseline", "markov phased baseline"} <= set(both)
    # the two baselines are different sets of the same size (the phased chain samples its own states)
    assert both["markov phased baseline"]["js_4mer"] != both["markov-5 baseline"]["js_4mer"]
    hmm = rows("hmm")
    assert {"markov-5 baseline", "markov phased HMM baseline"} <= set(hmm) and "markov phased baseline" not in hmm
    assert hmm["markov phased HMM baseline"]["js_4mer"] not in (both["markov phased baseline"]["js_4mer"],
                                                               both["markov-5 baseline"]["js_4mer"])
