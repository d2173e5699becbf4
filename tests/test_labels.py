"""Labels from FASTA headers, a regex, a TSV table and several files; the stratified split."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, random_dna
from utils.errors import InputError
from utils.labels import MIN_LABEL_WINDOWS, LabelSource
from utils.sequences import decode, load_sequences, read_records


def fasta(path, records):
    path.write_text("".join(f">{head}\n{seq}\n" for head, seq in records))
    return path


def short_records(tmp_path, name="short.fasta", header=lambda i, lab: f"r{i} label={lab}"):
    """Twelve 600-bp records per label (short: assigned whole to one side of the split), each label
    with its own composition so a window's label can be read from its bases."""
    recs = []
    for i in range(24):
        lab = "phage" if i % 2 else "host"
        recs.append((header(i, lab), random_dna(600, i, gc=0.7 if lab == "phage" else 0.3)))
    return fasta(tmp_path / name, recs)


def test_header_labels_reach_every_window_and_the_split_is_stratified(tmp_path):
    d = load_sequences(short_records(tmp_path), 50, val_fraction=0.25, seed=3)
    assert d.label_names == ("host", "phage")
    counts = d.label_counts()
    assert all(tr >= MIN_LABEL_WINDOWS and va > 0 for tr, va in counts.values())
    # 12 records a label, a quarter of them held out per label: 3 records x 12 windows
    assert counts == {"host": (9 * 12, 3 * 12), "phage": (9 * 12, 3 * 12)}
    for x, lab in ((d.train, d.train_labels), (d.val, d.val_labels)):
        gc = np.isin(x, (1, 2)).mean(1)
        assert np.all((gc > 0.5) == (lab == 1))  # each window carries its own record's label
    # no leakage: no held-out window occurs in training
    train = set(decode(d.train))
    assert not [s for s in decode(d.val) if s in train]


def test_unlabelled_data_are_split_as_before(tmp_path):
    path = short_records(tmp_path, header=lambda i, lab: f"r{i}")
    d = load_sequences(path, 50, val_fraction=0.25, seed=3)
    assert d.train_labels is None and d.label_names == () and d.label_counts() == {}


def test_a_mix_of_labelled_and_unlabelled_headers_names_the_first_unlabelled_record(tmp_path):
    path = short_records(tmp_path, header=lambda i, lab: f"r{i}" + ("" if i == 5 else f" label={lab}"))
    with pytest.raises(InputError, match=r"short.fasta: record 'r5' has no label= in its header, but 23 of 24"):
        load_sequences(path, 50)


def test_labels_from_a_regex_over_the_header(tmp_path):
    path = short_records(tmp_path, header=lambda i, lab: f"r{i} [organism={lab.upper()}] len=600")
    d = load_sequences(path, 50, labels=LabelSource(pattern=r"organism=(\w+)"))
    assert d.label_names == ("HOST", "PHAGE")
    with pytest.raises(InputError, match=r"record 'r0' does not match --label_pattern 'species=\(\\w\+\)'"):
        load_sequences(path, 50, labels=LabelSource(pattern=r"species=(\w+)"))
    with pytest.raises(InputError, match="not a regular expression"):
        load_sequences(path, 50, labels=LabelSource(pattern="(unclosed"))


def test_labels_from_a_table(tmp_path):
    path = short_records(tmp_path, header=lambda i, lab: f"r{i} some description")
    table = tmp_path / "ids.tsv"
    table.write_text("record_id\tlabel\n" + "".join(f"r{i}\t{'b' if i % 2 else 'a'}\n" for i in range(24)))
    d = load_sequences(path, 50, labels=LabelSource(table=str(table)))
    assert d.label_names == ("a", "b") and np.all((np.isin(d.train, (1, 2)).mean(1) > 0.5) == (d.train_labels == 1))
    table.write_text("".join(f"r{i}\t{'b' if i % 2 else 'a'}\n" for i in range(23)))
    with pytest.raises(InputError, match=r"short.fasta: record 'r23' has no row in .*ids.tsv"):
        load_sequences(path, 50, labels=LabelSource(table=str(table)))
    table.write_text("r1\tb\nr1\ta\n")
    with pytest.raises(InputError, match=r"ids.tsv: line 2: record 'r1' is labelled both 'b' and 'a'"):
        load_sequences(path, 50, labels=LabelSource(table=str(table)))
    table.write_text("r1 b\n")
    with pytest.raises(InputError, match=r"ids.tsv: line 1: expected 'record id<TAB>label'"):
        load_sequences(path, 50, labels=LabelSource(table=str(table)))


def test_several_files_are_labelled_by_their_stems(tmp_path):
    host = fasta(tmp_path / "host.fasta", [(f"h{i}", random_dna(600, i, gc=0.3)) for i in range(8)])
    phage = fasta(tmp_path / "phage.fa.gz.txt", [(f"p{i}", random_dna(600, 100 + i, gc=0.7)) for i in range(8)])
    d = load_sequences([host, phage], 50, val_fraction=0.25)
    assert d.label_names == ("host", "phage") and d.n_records == 16
    assert np.all((np.isin(d.val, (1, 2)).mean(1) > 0.5) == (d.val_labels == 1))
    same = fasta(tmp_path / "host.fa", [("x", random_dna(600, 7))])
    with pytest.raises(InputError, match="same stem"):
        load_sequences([host, same], 50)


def test_a_label_with_too_few_windows_is_an_error(tmp_path):
    recs = [(f"r{i} label=common", random_dna(600, i)) for i in range(8)] + [("rare1 label=rare", random_dna(120, 9))]
    with pytest.raises(InputError, match=r"label 'rare' has [0-9]+ training and [0-9]+ held-out window\(s\)"):
        load_sequences(fasta(tmp_path / "f.fasta", recs), 50)


def test_a_long_record_per_label_is_split_by_blocks(tmp_path):
    recs = [("a label=A", random_dna(30_000, 1, gc=0.3)), ("b label=B", random_dna(30_000, 2, gc=0.7))]
    d = load_sequences(fasta(tmp_path / "long.fasta", recs), 100, val_fraction=0.2)
    counts = d.label_counts()
    for tr, va in counts.values():
        assert abs(va / (tr + va) - 0.2) < 0.03  # every label held out at the asked fraction


def test_cached_labels_round_trip(tmp_path, monkeypatch):
    import utils.sequences as S

    monkeypatch.setattr(S, "CACHE_MIN_BYTES", 0)
    path = short_records(tmp_path)
    first = load_sequences(path, 50, val_fraction=0.25, seed=3)
    second = load_sequences(path, 50, val_fraction=0.25, seed=3)
    assert second.label_names == first.label_names
    assert np.array_equal(second.train_labels, first.train_labels) and np.array_equal(second.val, first.val)
    assert np.array_equal(second.val_segment_labels, first.val_segment_labels)
    assert list((tmp_path / "cache" / "data").iterdir())


def test_the_labelled_reference_is_the_dense_held_out_windows_each_with_its_records_label(tmp_path):
    from analysis.judge import REF_STRIDE, reference_labels, reference_windows

    recs = [("a label=A", random_dna(20_000, 1, gc=0.3)), ("b label=B", random_dna(20_000, 2, gc=0.7)),
            ("c label=A", random_dna(20_000, 3, gc=0.3))]
    d = load_sequences(fasta(tmp_path / "long.fasta", recs), 30, val_fraction=0.2)
    ref, _, _ = reference_windows(d)
    labels = reference_labels(d)
    assert labels.shape[0] == ref.shape[0] > 2 * d.val.shape[0] and len(d.val_segment_labels) == len(d.val_segments)
    by_label = {0: recs[0][1] + "|" + recs[2][1], 1: recs[1][1]}  # label indices follow first appearance: A, B
    assert d.label_names == ("A", "B")
    for i in np.linspace(0, ref.shape[0] - 1, 60).astype(int):  # each window lies in a record of its label
        w = "".join(decode(ref[i][None]))
        assert w in by_label[int(labels[i])] and w not in by_label[1 - int(labels[i])]
    assert set(labels.tolist()) == {0, 1} and REF_STRIDE < 30
    assert np.array_equal(reference_labels(d, 0), d.val_labels)  # the non-overlapping windows, as before
    nothing_held = load_sequences(tmp_path / "long.fasta", 30, val_fraction=0.0)
    assert reference_labels(nothing_held) is nothing_held.train_labels
    assert reference_labels(load_sequences(tmp_path / "long.fasta", 30, val_fraction=0.2, labels=None)) is not None


def test_each_segment_carries_its_records_label_whatever_the_windows_stride(tmp_path, monkeypatch):
    """train_segment_labels / val_segment_labels: one label per segment, the record's, also where the
    training windows overlap (stride 7), so bench/conditional.py's per-label segments no longer rest
    on the windows lying seq_len apart in segment order; the cache keeps them."""
    import utils.sequences as S

    sys.path.insert(0, str(ROOT / "bench"))
    from conditional import _segments

    recs = [("a label=A", random_dna(20_000, 1, gc=0.3)), ("b label=B", random_dna(20_000, 2, gc=0.7)),
            ("c label=A", random_dna(20_000, 3, gc=0.3))]
    path = fasta(tmp_path / "long.fasta", recs)
    d = load_sequences(path, 70, val_fraction=0.2, stride=7)
    by_label = {"A": recs[0][1] + "|" + recs[2][1], "B": recs[1][1]}
    for which, segs, labels in (("train", d.train_segments, d.train_segment_labels),
                                ("val", d.val_segments, d.val_segment_labels)):
        assert len(labels) == len(segs) and set(labels.tolist()) == {0, 1}
        for name in d.label_names:
            mine = _segments(d, name, which)
            assert mine and sum(len(x) for x in mine) < sum(len(x) for x in segs)
            other = by_label["B" if name == "A" else "A"]
            for seg in mine:
                text = "".join(decode(seg[None]))
                assert text in by_label[name] and text not in other
    monkeypatch.setattr(S, "CACHE_MIN_BYTES", 0)
    first = load_sequences(path, 70, val_fraction=0.2, stride=7)
    second = load_sequences(path, 70, val_fraction=0.2, stride=7)
    assert np.array_equal(first.train_segment_labels, d.train_segment_labels)
    assert np.array_equal(second.train_segment_labels, d.train_segment_labels)
    assert list((tmp_path / "cache" / "data").iterdir())  # the second load read the cache


def test_training_reports_windows_per_label_and_the_checkpoint_keeps_the_names(tmp_path, capsys):
    import csv

    import torch

    from main import main

    path = short_records(tmp_path, header=lambda i, lab: f"r{i} kind:{lab}")
    args = ["--mode", "train", "--model", "markov", "--data", str(path), "--seq_len", "50", "--epochs", "1",
            "--label_pattern", r"kind:(\w+)", "--run_dir", "runs/l", "--set", "train.eval_samples=20"]
    assert main(args) == 0
    row = next(csv.DictReader(open("runs/l/metrics.csv")))
    assert int(row["windows_host"]) == int(row["windows_phage"]) == 10 * 12  # 2 of 12 records held out
    ck = torch.load("checkpoints/markov_last.pt", weights_only=True)
    assert ck["stats"]["label_names"] == ["host", "phage"] and ck["config"]["data"]["label_pattern"] == r"kind:(\w+)"
    assert main(args[:-4] + ["--label_pattern", r"sort:(\w+)", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "record 'r0' does not match --label_pattern 'sort:(\\w+)'" in err


def test_markov_keeps_one_chain_per_label_and_generates_by_label(tmp_path, capsys):
    import torch

    from main import main
    from models.markov import MarkovChain
    from utils.sequences import read_records

    path = short_records(tmp_path)
    common = ["--data", str(path), "--seq_len", "50", "--set", "train.eval_samples=20", "--order", "2"]
    assert main(["--mode", "train", "--model", "markov", "--epochs", "1", "--run_dir", "runs/m"] + common) == 0
    ck = torch.load("checkpoints/markov_last.pt", weights_only=True)
    d = load_sequences(path, 50, seed=42)  # the split training used (train.seed 42)
    for i, name in enumerate(d.label_names):  # each label's chain counts exactly that label's windows
        ref = MarkovChain(2, 1.0)
        ref.add_counts(torch.from_numpy(d.train[d.train_labels == i]).long())
        assert torch.equal(ck["members"][0][f"label{i}.counts"], ref.counts), name
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/markov_best.pt", "--n", "300", "--label", "all",
                 "--output", "all.fasta"]) == 0
    recs = read_records("all.fasta", titles=True)
    assert len(recs) == 600
    for lab, want_gc in (("host", 0.3), ("phage", 0.7)):
        seqs = [s for _, title, s in recs if title.endswith(f"label={lab}")]
        gc = np.mean([(s.count("G") + s.count("C")) / len(s) for s in seqs])
        assert len(seqs) == 300 and abs(gc - want_gc) < 0.03, (lab, gc)
    capsys.readouterr()
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/markov_best.pt", "--label", "virus"]) == 2
    assert capsys.readouterr().err.strip() == "error: --label virus: unknown label (known: host, phage)"


def test_label_needs_a_labelled_model(genome, tmp_path, capsys):
    from main import main

    assert main(["--mode", "train", "--model", "markov", "--data", str(genome), "--seq_len", "24", "--epochs", "1",
                 "--set", "train.eval_samples=20"]) == 0
    capsys.readouterr()
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/markov_best.pt", "--label", "host"]) == 2
    assert capsys.readouterr().err.strip() == "error: --label: this checkpoint was trained without labels"


def test_several_data_files_train_one_labelled_markov(tmp_path, capsys):
    import torch
    import yaml

    from main import main
    from utils.sequences import read_records

    host = fasta(tmp_path / "host.fasta", [(f"h{i}", random_dna(600, i, gc=0.3)) for i in range(8)])
    phage = fasta(tmp_path / "phage.fasta", [(f"p{i}", random_dna(600, 100 + i, gc=0.7)) for i in range(8)])
    args = ["--mode", "train", "--model", "markov", "--data", str(host), str(phage), "--seq_len", "50",
            "--epochs", "1", "--order", "2", "--run_dir", "runs/two", "--set", "train.eval_samples=20"]
    assert main(args) == 0
    ck = torch.load("checkpoints/markov_last.pt", weights_only=True)
    assert ck["stats"]["label_names"] == ["host", "phage"] and ck["data_sha256"]
    assert yaml.safe_load(open("runs/two/config.yaml"))["data"]["path"] == [str(host), str(phage)]
    assert main(["--mode", "train", "--resume", "checkpoints/markov_last.pt", "--epochs", "2"]) == 0
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/markov_best.pt", "--n", "200", "--label", "phage",
                 "--output", "phage_generated.fasta"]) == 0
    seqs = [s for _, s in read_records("phage_generated.fasta")]
    assert abs(np.mean([(s.count("G") + s.count("C")) / len(s) for s in seqs]) - 0.7) < 0.03
    capsys.readouterr()
    # gen with the training files: each file is compared with the sequences of its own label, and
    # --max_identity checks the windows of both
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/markov_best.pt", "--label", "all", "--n", "100",
                 "--data", str(host), str(phage), "--max_identity", "0.95", "--output", "both.fasta"]) == 0
    out = capsys.readouterr().out
    lines = {lab: next(x for x in out.splitlines() if x.startswith(f"label {lab} vs ")) for lab in ("host", "phage")}
    gcs = {lab: float(line.split("GC ")[1].split()[0]) for lab, line in lines.items()}
    assert abs(gcs["host"] - 0.3) < 0.03 and abs(gcs["phage"] - 0.7) < 0.03, lines
    assert f"identical to a training window of {host} {phage}" in out


# per family: small networks and a few steps; (model flags, minimum GC gap between the labels' samples)
CONDITIONAL = {
    "stacked": ["--set", "model.d_model=16", "--set", "model.g_layers=1", "--set", "model.ngram_order=0"],
    "gumbel": ["--set", "model.hidden=16", "--set", "model.noise_dim=8", "--set", "model.d_filters=[8]"],
    "seqgan": ["--set", "model.hidden=16", "--set", "model.pre_epochs=2", "--set", "model.dis_pre_epochs=1",
               "--set", "model.total_batch=1", "--set", "model.rollout_num=2", "--set", "model.d_num_filters=[4,4]",
               "--set", "model.d_filter_sizes=[2,3]"],
    "masked": ["--set", "model.d_model=16", "--set", "model.n_layers=1"],
}


@pytest.mark.parametrize("family", sorted(CONDITIONAL))
def test_every_family_trains_on_labels_and_writes_the_requested_one(family, tmp_path, capsys):
    """host windows have GC 0.3, phage 0.7: a model that reads its label writes each label's GC."""
    import torch

    from main import main
    from utils.sequences import read_records

    path = short_records(tmp_path)
    assert main(["--mode", "train", "--model", family, "--data", str(path), "--seq_len", "30", "--epochs", "3",
                 "--set", "train.steps_per_epoch=40", "--set", "train.eval_samples=20", "--set", "train.lr_g=0.01",
                 *CONDITIONAL[family]]) == 0
    ck = torch.load(f"checkpoints/{family}_last.pt", weights_only=True)
    assert ck["stats"]["label_names"] == ["host", "phage"] and ck["stats"]["label_freq"] == [0.5, 0.5]
    assert main(["--mode", "gen", "--checkpoint", f"checkpoints/{family}_last.pt", "--n", "100", "--label", "all",
                 "--output", "all.fasta"]) == 0
    recs = list(read_records("all.fasta"))
    heads = [line for line in open("all.fasta").read().splitlines() if line.startswith(">")]
    assert [h.split("label=")[1].split()[0] for h in heads] == ["host"] * 100 + ["phage"] * 100
    gc = [np.mean([(s.count("G") + s.count("C")) / len(s) for _, s in recs[i : i + 100]]) for i in (0, 100)]
    assert gc[0] < 0.42 and gc[1] > 0.58, gc
    capsys.readouterr()
    assert main(["--mode", "gen", "--checkpoint", f"checkpoints/{family}_last.pt", "--label", "virus"]) == 2
    assert capsys.readouterr().err.strip() == "error: --label virus: unknown label (known: host, phage)"


def test_guidance_zero_is_the_unconditional_path_and_one_the_conditional(tmp_path):
    """Classifier-free guidance mixes null + W (cond - null): W = 0 draws exactly what the null class
    draws alone, W = 1 exactly what the class draws alone (same seeds)."""
    import torch

    from models.registry import DataStats, get_family
    from utils.config import parse_set, resolve

    stats = DataStats(seq_len=12, base_freq=(0.25,) * 4, gc=0.5, gc_percentiles=tuple(i / 100 for i in range(101)),
                      label_names=("a", "b"), label_freq=(0.5, 0.5))
    small = {"stacked": {"d_model": 16}, "masked": {"d_model": 16}, "gumbel": {"hidden": 16, "noise_dim": 8},
             "seqgan": {"hidden": 16}}
    for family in ("stacked", "masked", "gumbel", "seqgan"):
        fam = get_family(family)
        cfg = resolve(family, fam.Config, {"model": small[family]}, parse_set([]))
        torch.manual_seed(0)
        nets = fam.build(cfg, stats).eval()
        null = nets["classes"].null

        def draw(**kw):
            return fam.sample(nets, 6, 12, generator=torch.Generator().manual_seed(5), **kw)

        def draw_class(y):
            g = torch.Generator().manual_seed(5)
            yy = torch.full((6,), y, dtype=torch.long)
            if family == "stacked":
                return nets["G"].generate(6, 12, "cpu", g, y=yy)[0]
            if family == "gumbel":
                return nets["G"].generate(6, 12, "cpu", g, y=yy)
            if family == "seqgan":
                return nets["G"].generate(6, 12, g, y=yy)
            from models.masked import MASK, unmask
            return unmask(nets["M"], torch.full((6, 12), MASK), 12, generator=g, y=yy)

        assert torch.equal(draw(label=1, guidance=0.0), draw_class(null)), family
        assert torch.equal(draw(label=1, guidance=1.0), draw_class(1)), family
        assert not torch.equal(draw(label=1, guidance=3.0), draw_class(1)), family


def test_a_class_table_without_the_null_row_loads_and_samples_as_before():
    """gumbel and seqgan checkpoints from before their guidance hold n class rows, not n + 1: they
    load (a zero null row is added) and their conditional samples do not change."""
    import torch

    from models.registry import DataStats, get_family
    from utils.config import parse_set, resolve
    from utils.errors import ConfigError

    stats = DataStats(seq_len=12, base_freq=(0.25,) * 4, gc=0.5, gc_percentiles=tuple(i / 100 for i in range(101)),
                      label_names=("a", "b"), label_freq=(0.5, 0.5))
    for family, key in (("gumbel", "G.label.weight"), ("seqgan", "G.cls.weight")):
        fam = get_family(family)
        cfg = resolve(family, fam.Config, {"model": {"hidden": 16}}, parse_set([]))
        torch.manual_seed(0)
        nets = fam.build(cfg, stats).eval()
        old = {k: v.clone() for k, v in nets.state_dict().items()}
        old[key] = old[key][:-1]  # the table as it was saved: classes a and b only, no null flag
        old.pop(key.replace("weight", "has_null"))
        if family == "seqgan":
            old["rollout.cls.weight"] = old["rollout.cls.weight"][:-1]
            old.pop("rollout.cls.has_null")
        torch.manual_seed(1)
        loaded = fam.build(cfg, stats).eval()
        loaded.load_state_dict(old)
        assert torch.equal(loaded.state_dict()[key][:-1], nets.state_dict()[key][:-1]), family
        assert not loaded.state_dict()[key][-1].any(), family

        def draw(m):
            return fam.sample(m, 8, 12, generator=torch.Generator().manual_seed(3), label=1)

        assert torch.equal(draw(loaded), draw(nets)), family
        with pytest.raises(ConfigError, match="before its family had classifier-free guidance"):
            fam.sample(loaded, 8, 12, generator=torch.Generator().manual_seed(3), label=1, guidance=2.0)
        fam.sample(nets, 8, 12, generator=torch.Generator().manual_seed(3), label=1, guidance=2.0)


def test_guidance_needs_a_family_and_a_model_that_have_it(tmp_path, capsys):
    from main import main

    path = short_records(tmp_path)
    assert main(["--mode", "train", "--model", "markov", "--data", str(path), "--seq_len", "30", "--epochs", "1",
                 "--set", "train.eval_samples=20"]) == 0
    capsys.readouterr()
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/markov_last.pt", "--label", "host", "--guidance", "2"]) == 2
    assert "--guidance: the 'markov' family has no classifier-free guidance" in capsys.readouterr().err
    assert main(["--mode", "train", "--model", "masked", "--data", str(path), "--seq_len", "30", "--epochs", "1",
                 "--set", "model.label_drop=0", "--set", "model.d_model=16", "--set", "train.steps_per_epoch=2",
                 "--set", "train.eval_samples=20"]) == 0
    capsys.readouterr()
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/masked_last.pt", "--label", "host", "--guidance", "2"]) == 2
    assert "trained with model.label_drop 0" in capsys.readouterr().err
    # without --guidance, masked's own default W (gen.guidance 1.1) needs a null class: not applied here
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/masked_last.pt", "--label", "host", "--n", "4"]) == 0


def test_a_familys_default_guidance_applies_to_label_and_says_so(tmp_path, capsys, caplog, monkeypatch):
    """masked's config chooses W 1.1 for --label (what bench/conditional.py measured): generating
    without --guidance draws what --guidance 1.1 draws, says so in the log, and --guidance 1 is the
    conditional model alone; without --label nothing is guided. stacked and masked balance labels."""
    import logging

    import torch

    from main import main
    from utils.sequences import read_records

    path = short_records(tmp_path)
    assert main(["--mode", "train", "--model", "masked", "--data", str(path), "--seq_len", "30", "--epochs", "1",
                 "--set", "train.steps_per_epoch=3", "--set", "train.eval_samples=10", *CONDITIONAL["masked"]]) == 0
    ck = torch.load("checkpoints/masked_last.pt", weights_only=True)
    assert ck["config"]["gen"]["guidance"] == 1.1 and ck["config"]["train"]["label_balance"] == 1.0

    def gen(*extra):
        out = f"g{len(list(tmp_path.glob('g*.fasta')))}.fasta"
        assert main(["--mode", "gen", "--checkpoint", "checkpoints/masked_last.pt", "--n", "16", "--seed", "5",
                     "--output", out, *extra]) == 0
        return [s for _, s in read_records(out)]

    from train.engine import Ensemble

    seen, sample = [], Ensemble.sample

    def spy(self, *a, **kw):
        seen.append(kw.get("guidance"))
        return sample(self, *a, **kw)

    monkeypatch.setattr(Ensemble, "sample", spy)
    caplog.set_level(logging.INFO)
    default = gen("--label", "phage")
    assert "classifier-free guidance 1.1 for --label" in caplog.text
    assert default == gen("--label", "phage", "--guidance", "1.1")
    gen("--label", "phage", "--guidance", "1")
    caplog.clear()
    gen()
    assert "classifier-free guidance" not in caplog.text
    assert seen == [1.1, 1.1, 1.0, None]
    capsys.readouterr()
    assert main(["--mode", "train", "--model", "stacked", "--show_config"]) == 0
    assert "label_balance: 1.0" in capsys.readouterr().out


def test_fidelity_of_real_windows_is_their_ceiling_and_of_random_dna_chance(tmp_path):
    """A set of one label's real held-out windows scores exactly that label's ceiling (the same
    windows, the same classifier); uniform random DNA asked half for each label scores chance."""
    from analysis.fidelity import fidelity_row

    d = load_sequences(short_records(tmp_path), 30, val_fraction=0.25, seed=3, stride=6)
    ref = dict(train=d.train, train_labels=d.train_labels, val=d.val, val_labels=d.val_labels,
               label_names=d.label_names)
    host = d.val[d.val_labels == 0]
    row, arrays = fidelity_row(host, ["host"] * len(host), c2st=False, **ref)
    assert row["conditional_accuracy"] == row["label_host_ceiling"] == row["conditional_ceiling"] > 0.9
    assert row["label_host_gc"] == pytest.approx(row["label_host_gc_ref"]) and row["label_host_js_4mer"] == 0
    assert arrays["confusion"][0].sum() == pytest.approx(1) and arrays["confusion"][1].sum() == 0
    noise = np.random.default_rng(0).integers(0, 4, (400, 30)).astype(np.uint8)
    row, _ = fidelity_row(noise, ["host", "phage"] * 200, c2st=False, **ref)
    assert row["conditional_chance"] == 0.5 and abs(row["conditional_accuracy"] - 0.5) < 0.1
    with pytest.raises(ValueError, match="generated labels virus are not labels of the reference"):
        fidelity_row(noise[:2], ["host", "virus"], c2st=False, **ref)


def test_a_labels_c2st_and_its_floor_are_judged_at_one_size():
    from analysis.fidelity import _label_c2st

    rng = np.random.default_rng(0)
    real, floor = rng.integers(0, 4, (400, 30)).astype(np.uint8), rng.integers(0, 4, (120, 30)).astype(np.uint8)
    mine = np.zeros((300, 30), np.uint8)  # all A: told apart from random DNA at once
    got = _label_c2st(mine, real, None, floor, seed=0)
    assert got["c2st_n"] == 120 and got["c2st_auc"] > 0.95 and got["c2st_floor"] < 0.7
    assert got["c2st_vs_floor"] == "above the floor"
    alone = _label_c2st(mine, real, None, None, seed=0)
    assert alone["c2st_n"] == 300 and "c2st_floor" not in alone


def test_analyze_reports_conditional_fidelity_for_labelled_generated_sets(tmp_path, capsys):
    """--mode analyze on a labelled reference and a generated file whose headers carry label=:
    the figures, the confusion matrix figure and the per-label rows."""
    import json

    from main import main

    from analysis.judge import reference_labels

    path = short_records(tmp_path)
    d = load_sequences(path, 30, val_fraction=0.2, seed=42)
    heads = [("host", x) for x in decode(d.val[d.val_labels == 0])] * 4 + \
            [("phage", x) for x in decode(d.val[d.val_labels == 1])]
    fasta(tmp_path / "gen.fasta", [(f"gen_{i} label={lab}", s) for i, (lab, s) in enumerate(heads)])
    assert main(["--mode", "analyze", "--generated", str(tmp_path / "gen.fasta"), "--data", str(path),
                 "--output-dir", str(tmp_path / "an")]) == 0
    out = capsys.readouterr().out
    assert "conditional accuracy" in out
    m = json.loads((tmp_path / "an/metrics.json").read_text())
    assert m["conditional_labels"] == 2 and m["conditional_accuracy"] > 0.9
    assert {"label_host_c2st_auc", "label_phage_gc", "label_phage_ceiling"} <= set(m)
    # each label's judge reads the held-out windows every 10 bases (as the set's own judge), not the 30-bp
    # tiles, at most at as many a side as the label has training windows: its floor's size
    dense_host, train_host = int((reference_labels(d) == 0).sum()), int((d.train_labels == 0).sum())
    assert m["label_host_c2st_n"] == min(dense_host, train_host) > 2 * int((d.val_labels == 0).sum())
    assert m["label_host_c2st_floor_lo"] <= m["label_host_c2st_floor"] <= m["label_host_c2st_floor_hi"]
    assert m["label_phage_c2st_vs_floor"] in ("above the floor", "overlaps the floor", "below the floor")
    assert "label host: C2ST" in out and "real training windows" in out.split("label host:")[1]
    assert (tmp_path / "an/conditional_confusion.png").stat().st_size > 5000
    assert "conditional_accuracy" in (tmp_path / "an/report.md").read_text()


def test_compare_models_adds_conditional_accuracy_for_labelled_sets(tmp_path, capsys):
    """A labelled generated file (label= headers) against a labelled reference gets the three
    conditional columns; an unlabelled one does not."""
    from compare_models import main as compare_main

    from analysis.judge import reference_labels, reference_windows

    path = short_records(tmp_path)
    d = load_sequences(path, 30, val_fraction=0.2, seed=42)
    ref, labels = reference_windows(d)[0], reference_labels(d)  # the reference: its ceiling is read on them
    labelled = [(f"g{i} label={d.label_names[lab]}", s) for i, (lab, s) in enumerate(zip(labels, decode(ref)))]
    fasta(tmp_path / "lab.fasta", labelled)
    fasta(tmp_path / "plain.fasta", [(f"g{i}", s) for i, (_, s) in enumerate(labelled)])
    assert compare_main(["--data", str(path), "--generated", str(tmp_path / "lab.fasta"), str(tmp_path / "plain.fasta"),
                         "--no-baseline", "--no-c2st", "--no-frechet", "--output-dir", str(tmp_path / "cmp")]) == 0
    import csv

    rows = {r["model"]: r for r in csv.DictReader(open(tmp_path / "cmp/comparison.csv"))}
    assert float(rows["lab"]["conditional_accuracy"]) == float(rows["lab"]["conditional_ceiling"]) > 0.9
    assert rows["plain"]["conditional_accuracy"] == "" and float(rows["lab"]["conditional_chance"]) == 0.5


@pytest.mark.parametrize("family", sorted(CONDITIONAL))
def test_gc_tilt_calibrates_the_mean_gc_to_the_request(family, genome, tmp_path, capsys):
    """--condition gc, a few steps: the GC class alone lands wherever it lands; the calibrated C/G
    tilt (chosen on 512 pilot sequences of other seeds) brings 1,000 sequences to the asked GC, in
    both directions, within three standard errors of the two sample means (pilot and output; these
    barely trained 20 bp models vary far more per sequence than real ones). Tilt 0 is exactly the
    untilted sampler; a larger tilt writes more GC."""
    import torch

    from main import main
    from train.engine import load_ensemble

    assert main(["--mode", "train", "--model", family, "--data", str(genome), "--seq_len", "20", "--epochs", "1",
                 "--condition", "gc", "--set", "train.steps_per_epoch=5", "--set", "train.eval_samples=20",
                 *CONDITIONAL[family]]) == 0
    ens, _ = load_ensemble(f"checkpoints/{family}_last.pt", device="cpu")
    assert torch.equal(ens.sample(50, seed=4, gc=0.5), ens.sample(50, seed=4, gc=0.5, gc_tilt=0.0))
    def gc_of(x):
        return ((x == 1) | (x == 2)).float().mean(1)

    lo, hi = (float(gc_of(ens.sample(400, seed=4, gc=0.5, gc_tilt=t)).mean()) for t in (-1.0, 1.0))
    assert hi > lo + 0.2, (lo, hi)
    for ask in (0.3, 0.7):
        tilt, pilot, draws = ens.calibrate_gc(ask, seed=99)
        assert abs(pilot - ask) <= 0.002 and draws <= 14, (tilt, pilot, draws)
        gc = gc_of(ens.sample(1000, seed=5, gc=ask, gc_tilt=tilt))
        assert abs(float(gc.mean()) - ask) < 0.002 + 3 * float(gc.std()) * (1 / 512 + 1 / 1000) ** 0.5, (ask, gc.mean())
    capsys.readouterr()
    assert main(["--mode", "gen", "--checkpoint", f"checkpoints/{family}_last.pt", "--n", "1000", "--gc", "0.62",
                 "--output", "tilted.fasta"]) == 0
    assert "--gc 0.62: GC tilt" in capsys.readouterr().out
    seqs = [line for line in open("tilted.fasta").read().splitlines() if not line.startswith(">")]
    gc = np.array([(s.count("G") + s.count("C")) / len(s) for s in seqs])
    assert abs(gc.mean() - 0.62) < 0.002 + 3 * gc.std() * (1 / 512 + 1 / 1000) ** 0.5, gc.mean()
    assert main(["--mode", "gen", "--checkpoint", f"checkpoints/{family}_last.pt", "--gc", "0.6",
                 "--gc_tilt", "lots"]) == 2
    assert capsys.readouterr().err.strip() == "error: --gc_tilt must be auto, off or a number, got 'lots'"


def test_a_label_without_gc_draws_the_bins_its_own_windows_fill(tmp_path):
    """label x GC bins: host windows sit at GC 0.3, phage at 0.7, so with two pooled quantile bins
    every host window is in the low bin. Asked for host without --gc, the model must draw the low
    bin, not a uniform mix of bins; a checkpoint state from before per-label bins loads as uniform."""
    import torch

    from models.condition import Classes, ConditionOptions
    from utils.modality import DNA

    data = load_sequences(short_records(tmp_path), 50, val_fraction=0.25, seed=3)
    stats = DNA().stats(data)
    cls = Classes(stats, ConditionOptions(condition="gc", gc_bins=2))
    torch.testing.assert_close(cls.bin_freq, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), atol=0.02, rtol=0)
    g = torch.Generator().manual_seed(0)
    assert (cls.for_sampling(500, "cpu", g, label=0) == 0).all()  # host, low bin
    assert (cls.for_sampling(500, "cpu", g, label=1) == 3).all()  # phage (1 x 2 bins) + high bin
    drawn = cls.for_sampling(4000, "cpu", g)  # labels by frequency, each with its own bin
    assert set(drawn.tolist()) == {0, 3} and abs(float((drawn == 0).float().mean()) - 0.5) < 0.05
    old = {k: v for k, v in cls.state_dict().items() if k != "bin_freq"}
    fresh = Classes(stats, ConditionOptions(condition="gc", gc_bins=2))
    fresh.load_state_dict(old)
    assert torch.equal(fresh.bin_freq, torch.full((2, 2), 0.5))


def test_infill_fills_as_the_requested_label(tmp_path, capsys):
    """host windows have GC 0.3, phage 0.7: gaps filled as phage are GC-rich, as host AT-rich, with
    the known bases untouched and the label in the header; an unknown label is the usual error."""
    from main import main
    from utils.sequences import read_records

    path = short_records(tmp_path)
    assert main(["--mode", "train", "--model", "masked", "--data", str(path), "--seq_len", "30", "--epochs", "3",
                 "--set", "train.steps_per_epoch=40", "--set", "train.eval_samples=20", "--set", "train.lr_g=0.01",
                 *CONDITIONAL["masked"]]) == 0
    known = "ACGTACGTAC"
    fasta(tmp_path / "gaps.fasta", [(f"g{i}", known + "N" * 20 + known) for i in range(20)])
    gc = {}
    for label in ("host", "phage"):
        assert main(["--mode", "gen", "--checkpoint", "checkpoints/masked_last.pt", "--infill",
                     str(tmp_path / "gaps.fasta"), "--label", label, "--output", f"{label}.fasta"]) == 0
        recs = list(read_records(f"{label}.fasta"))
        assert all(s[:10] == known and s[-10:] == known for _, s in recs)
        gc[label] = np.mean([(s[10:30].count("G") + s[10:30].count("C")) / 20 for _, s in recs])
        assert all(f"label={label}" in h for h in open(f"{label}.fasta").read().splitlines() if h.startswith(">"))
    assert gc["host"] < 0.42 and gc["phage"] > 0.58, gc
    capsys.readouterr()
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/masked_last.pt", "--infill",
                 str(tmp_path / "gaps.fasta"), "--label", "virus"]) == 2
    assert capsys.readouterr().err.strip() == "error: --label virus: unknown label (known: host, phage)"


def test_a_balanced_pass_gives_each_label_its_share_and_repeats_only_after_a_full_round():
    import torch

    from train.engine import balanced_pass

    labels = torch.tensor([0] * 900 + [1] * 100)
    boots = torch.arange(1000)
    gen = torch.Generator().manual_seed(0)
    natural = balanced_pass(boots, labels, 0.0, gen)
    assert sorted(natural.tolist()) == list(range(1000))  # balance 0: a plain permutation
    even = balanced_pass(boots, labels, 1.0, gen)
    assert even.numel() == 1000 and int((labels[even] == 1).sum()) == 500
    big = even[labels[even] == 0]
    assert big.unique().numel() == 500  # a subset of the large label, no repeats
    assert torch.bincount(even[labels[even] == 1] - 900).tolist() == [5] * 100  # every small window 5 times
    half = balanced_pass(boots, labels, 0.5, gen)
    assert int((labels[half] == 1).sum()) == 250  # shares ~ sqrt(n): 30 : 10
    again = [balanced_pass(boots, labels, 1.0, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*again)  # one generator state, one pass
    bagged = torch.tensor([0, 0, 5, 950, 950, 960])  # a bootstrap sample's indices, repeats kept
    assert sorted(balanced_pass(bagged, labels, 1.0, gen).tolist()) == [0, 0, 5, 950, 950, 960]


def test_label_balance_is_logged_trains_and_is_refused_out_of_range(tmp_path, capsys, caplog):
    import logging

    from main import main

    path = tmp_path / "skewed.fasta"
    rng = np.random.default_rng(0)
    recs = [(f"h{i} label=host", "".join(rng.choice(list("AATTGC"), 600))) for i in range(16)]
    recs += [(f"p{i} label=phage", "".join(rng.choice(list("GGCCAT"), 600))) for i in range(4)]
    fasta(path, recs)
    args = ["--mode", "train", "--model", "gumbel", "--data", str(path), "--seq_len", "30", "--epochs", "1",
            "--set", "train.steps_per_epoch=4", "--set", "train.eval_samples=10", *CONDITIONAL["gumbel"]]
    caplog.set_level(logging.INFO)
    assert main(args + ["--set", "train.label_balance=1"]) == 0
    line = next(x for x in caplog.text.splitlines() if "label balance" in x)
    line = line[line.index("label balance"):]
    assert line.startswith("label balance 1: shares of every pass host 50%, phage 50% (of the windows: ")
    assert line.endswith("%)") and "phage 50%" in line
    assert main(args + ["--set", "train.label_balance=1.5", "--overwrite"]) == 2
    assert "train.label_balance must lie in [0, 1], got 1.5" in capsys.readouterr().err


def test_conditional_bench_judges_a_label_and_its_floor_at_one_size_with_block_folds(tmp_path, monkeypatch):
    """bench/conditional.py: a label's training windows are read back by block (the floor's side),
    and every C2ST of a label, the floor's included, has the same number a side (the smallest of
    held-out windows, training windows and the generated set) and, by default, the held-out
    windows' blocks as folds."""
    from types import SimpleNamespace

    sys.path.insert(0, str(ROOT / "bench"))
    import conditional as C
    from analysis import judge as J

    recs = [("a label=A", random_dna(30_000, 1, gc=0.3)), ("b label=B", random_dna(12_000, 2, gc=0.7))]
    d = load_sequences(fasta(tmp_path / "lab.fasta", recs), 70, val_fraction=0.2)
    ref = {"heldout": {}, "heldout_groups": {}, "floor": {}, "floors": {}}
    for k, name in enumerate(d.label_names):
        w, g = J.heldout_windows(C._segments(d, name, "train"), 70, 70, groups=True)
        mine = d.train[d.train_labels == k]
        assert w.shape == mine.shape and np.array_equal(w, mine)  # the same windows, in the same order
        assert g.max() + 1 == len(C._segments(d, name, "train")) > 1
        ref["floor"][name] = (w, g)
        ref["heldout"][name], ref["heldout_groups"][name] = J.heldout_windows(C._segments(d, name, "val"), 70, 10,
                                                                               groups=True)
    calls = []

    def fake_c2st(real, gen, *, seed, max_n, real_groups=None, gen_groups=None):
        n = min(real.shape[0], gen.shape[0], max_n)
        calls.append({"n": n, "real_groups": real_groups, "gen_groups": gen_groups})
        return {"n": n, "auc": 0.5 + n / 1e5, "lo": 0.4, "hi": 0.6, "sd": 0.01, "repeats": 3, "judge": "fake", "device": "cpu"}

    monkeypatch.setattr(J, "c2st", fake_c2st)
    args = SimpleNamespace(seed=0, folds="grouped")
    nb_train, nb_held = ref["floor"]["B"][0].shape[0], ref["heldout"]["B"].shape[0]
    assert nb_train < nb_held < 1000  # so the size must come from the training windows, not the others
    gen = np.zeros((1000, 70), np.uint8)
    c = C.judge(ref, "B", gen, args)
    f = C.floor(ref, "B", c["c2st_n"], args)
    assert c["c2st_n"] == min(nb_train, nb_held) and calls[-1]["n"] == c["c2st_n"]  # the floor's size
    assert f["c2st_auc"] == c["c2st_auc"]  # same n, same figure from the fake judge
    # held-out blocks in folds for both; the floor's training side is judged as a generated set is
    assert calls[0]["real_groups"] is ref["heldout_groups"]["B"] and calls[0]["gen_groups"] is None
    assert calls[1]["real_groups"] is ref["heldout_groups"]["B"] and calls[1]["gen_groups"] is None
    C.floor(ref, "B", c["c2st_n"], args)
    assert len(calls) == 2  # one floor per (label, n)
    C.floor(ref, "B", c["c2st_n"], args, blocks=True)
    assert len(set(calls[-1]["gen_groups"])) > 1  # the training blocks, beside it
    C.judge(ref, "B", gen, SimpleNamespace(seed=0, folds="random"))
    assert calls[-1]["real_groups"] is None and calls[-1]["gen_groups"] is None


@pytest.mark.parametrize("args, shipped", [((), "data/labelled_example.fasta"),
                                           (("--stretches", "40", "--phages", "lambda", "t4", "t7"),
                                            "data/labelled_phages.fasta.gz")])
def test_the_shipped_labelled_examples_are_what_the_script_writes(args, shipped, tmp_path):
    """bench/make_labelled_example.py is deterministic and the shipped examples are its output; each
    record holds exactly the span its header names (until stop 39 each ran 10 bases on into the
    next); the three-phage example's phage label holds lambda, T4 and T7 whole."""
    out = tmp_path / Path(shipped).name
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_labelled_example.py"), *args, "--out", str(out)],
                   check=True, capture_output=True, cwd=ROOT)
    assert out.read_bytes() == (ROOT / shipped).read_bytes()
    labels, lengths = {}, {}
    for name, header, seq in read_records(out, titles=True):
        source, span = name.split(":")
        start, end = map(int, span.split("-"))
        assert len(seq) == end - start + 1, f"{name}: the header's span and the record's bases differ"
        labels.setdefault(header.split("label=")[1], set()).add(source)
        lengths[source] = lengths.get(source, 0) + len(seq)
    if "--phages" in args:
        assert labels == {"phage": {"lambda", "t4_phage", "t7_phage"}, "ecoli": {"ecoli_536"},
                          "ssuis": {"s_suis_sc84"}}
        assert (lengths["lambda"], lengths["t4_phage"], lengths["t7_phage"]) == (48_502, 168_903, 39_937)
