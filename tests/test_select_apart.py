"""data.select_apart: the held-out blocks dealt into a half that picks best.pt and a half that is judged."""
import numpy as np
import pytest

from main import main
from train.engine import train
from utils.config import parse_set, resolve
from utils.errors import ConfigError, InputError
from utils.sequences import decode, load_sequences
from models.registry import get_family
from tests.conftest import random_dna


def _rows(x) -> list:
    return sorted(map(bytes, np.asarray(x)))


def test_the_held_out_blocks_are_dealt_alternately_and_training_is_unchanged(tmp_path):
    seq = random_dna(60_000, seed=3)
    p = tmp_path / "g.fa"
    p.write_text(">g\n" + seq + "\n")
    whole = load_sequences(p, 50, val_fraction=0.2, block_size=3000)
    apart = load_sequences(p, 50, val_fraction=0.2, block_size=3000, select_apart=True)
    assert whole.select is None and whole.selection[0] is whole.val
    assert np.array_equal(whole.train, apart.train)  # the training windows do not change
    # the four held-out blocks: the first and third are judged, the second and fourth select
    assert len(whole.val_segments) == 4 and len(apart.val_segments) == len(apart.select_segments) == 2
    starts = [seq.index(decode(s[None, :50])[0]) for s in whole.val_segments]
    assert [seq.index(decode(s[None, :50])[0]) for s in apart.val_segments] == starts[0::2]
    assert [seq.index(decode(s[None, :50])[0]) for s in apart.select_segments] == starts[1::2]
    # the two halves are the held-out windows, each once
    assert _rows(np.concatenate([apart.val, apart.select])) == _rows(whole.val)
    assert not set(decode(apart.val)) & set(decode(apart.select))
    assert apart.selection[0] is apart.select
    capped = load_sequences(p, 50, val_fraction=0.2, block_size=3000, select_apart=True, max_sequences=100)
    assert capped.train.shape[0] == 100 and capped.val.shape[0] == capped.select.shape[0] == 25  # 100 x 0.2 / 0.8
    assert set(decode(capped.select)) <= set(decode(apart.select)) and set(decode(capped.val)) <= set(decode(apart.val))


def test_labels_are_dealt_per_label_and_a_label_with_one_held_out_record_is_an_error(tmp_path):
    p = tmp_path / "lab.fa"
    recs = [f">a{i} label=host\n{random_dna(60, seed=i, gc=0.3)}\n" for i in range(20)]
    recs += [f">b{i} label=phage\n{random_dna(60, seed=100 + i, gc=0.7)}\n" for i in range(20)]
    p.write_text("".join(recs))
    d = load_sequences(p, 50, val_fraction=0.2, crop=True, select_apart=True)
    names = list(d.label_names)
    for k in range(len(names)):  # every label in both halves: 4 held-out records each, 2 and 2
        assert (d.val_labels == k).sum() == 2 and (d.select_labels == k).sum() == 2
    assert d.select_counts() == {"host": 2, "phage": 2}
    held = set(decode(d.val)) | set(decode(d.select))
    assert len(held) == 8 and not held & set(decode(d.train))
    few = tmp_path / "few.fa"  # 12 phage records at 0.1: one held out, judged, nothing left to select with
    few.write_text("".join(recs[:32]))
    with pytest.raises(InputError, match="'phage' has 1 judged and no selection window"):
        load_sequences(few, 50, val_fraction=0.1, crop=True, select_apart=True)
    with pytest.raises(InputError, match="val_fraction > 0"):
        load_sequences(p, 50, val_fraction=0.0, select_apart=True)


def _markov(genome, data, tmp_path):
    fam = get_family("markov")
    cfg = resolve("markov", fam.Config, {"data": {"path": str(genome), "seq_len": 24, "select_apart": True}},
                  parse_set(["train.epochs=1", "train.eval_samples=50", f"train.checkpoint_dir={tmp_path}/ck"]))
    return train(cfg, data=data, save=False).history[-1]["val_nll"]


def test_the_engine_scores_epochs_on_the_selection_half_and_never_reads_the_judged_one(genome, tmp_path):
    d = load_sequences(genome, 24, val_fraction=0.2, select_apart=True)
    assert d.select.shape[0] > 0 and d.val.shape[0] > 0
    base = _markov(genome, d, tmp_path)
    d.val = np.zeros_like(d.val)  # poly-A judged windows: the epoch's score does not move
    assert _markov(genome, d, tmp_path) == pytest.approx(base, abs=1e-9)
    d.select = np.zeros_like(d.select)  # poly-A selection windows: it does
    assert abs(_markov(genome, d, tmp_path) - base) > 0.1


def test_cli_trains_apart_and_analyze_judges_only_the_judged_half(genome, tmp_path, capsys, monkeypatch):
    rc = main(["--mode", "train", "--model", "markov", "--data", str(genome), "--seq_len", "24", "--epochs", "1",
               "--order", "3", "--select_apart", "--run_dir", "runs/s", "--sample_every", "1",
               "--set", "train.eval_samples=50"])
    assert rc == 0 and "select_apart: true" in (tmp_path / "runs/s/config.yaml").read_text()
    capsys.readouterr()
    assert main(["--mode", "analyze", "--run", "runs/s", "--output-dir", "outputs/a1"]) == 0
    assert "judged half" in capsys.readouterr().out
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/markov_best.pt", "--n", "30"]) == 0
    assert main(["--mode", "analyze", "--generated", "outputs/generated.fasta", "--data", str(genome),
                 "--select_apart", "--output-dir", "outputs/a2"]) == 0
    assert "judged half" in capsys.readouterr().out
    from analysis.judge import reference_windows  # the held-out windows every 10 bases, of every block or the judged half

    whole, judged = (reference_windows(load_sequences(genome, 24, seed=42, select_apart=a))[0].shape[0]
                     for a in (False, True))
    assert 0 < judged < whole
    assert _compare_reference(genome, ["--select_apart"], monkeypatch) == judged
    assert _compare_reference(genome, [], monkeypatch) == whole
    from compare_models import main as compare_main  # a checkpoint trained apart, judged on every block: a note

    assert compare_main(["--data", str(genome), "--checkpoints", "checkpoints/markov_best.pt", "--n", "20",
                         "--no-baseline", "--no-c2st", "--no-frechet", "--output-dir", "outputs/cmp2"]) == 0
    assert "trained with --select_apart" in (tmp_path / "outputs/cmp2/comparison.md").read_text()
    with pytest.raises(ConfigError, match="synthetic"):
        from utils import modality
        from utils.config import DataConfig

        modality.load(DataConfig(synthetic=100, select_apart=True), 0)


def _compare_reference(genome, flags, monkeypatch) -> int:
    """compare_models.py on the generated set: the number of reference windows its rows were scored against."""
    from analysis import compare as C
    from compare_models import main as compare_main

    seen, real = [], C.rows_for
    monkeypatch.setattr(C, "rows_for", lambda sets, ref, **kw: seen.append(ref.shape[0]) or real(sets, ref, **kw))
    assert compare_main(["--data", str(genome), "--generated", "outputs/generated.fasta", "--no-baseline",
                         "--no-c2st", "--no-frechet", *flags, "--output-dir", "outputs/cmp"]) == 0
    return seen[-1]


def test_the_cache_keeps_both_halves(tmp_path, monkeypatch):
    from utils import sequences as S

    monkeypatch.setattr(S, "CACHE_MIN_BYTES", 1000)
    g = tmp_path / "g.fasta"
    g.write_text(">g\n" + random_dna(30_000, seed=4) + "\n")
    a = S.load_sequences(g, 50, seed=3, select_apart=True)
    b = S.load_sequences(g, 50, seed=3, select_apart=True)  # from the cache
    assert isinstance(b.select, np.memmap)
    for name in ("train", "val", "select"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert all(np.array_equal(x, y) for x, y in zip(a.select_segments, b.select_segments))
    whole = S.load_sequences(g, 50, seed=3)  # the default: its own entry, no selection half
    assert whole.select is None and len(list((tmp_path / "cache" / "data").iterdir())) == 2
