"""Every bad input and failed write is one line and exit code 2, with nothing already written
replaced; SIGTERM behaves as SIGINT and resumes bit-identically (issue 15).

The 19 cases of the issue are a table here. The machine's user may be root (chmod does not stop
root), so read-only folders are made by refusing temporaries inside them (every writer creates its
files through tempfile) as well as by chmod, and a full disk by a failing fsync.
"""
import argparse
import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import analyse_distributions
import compare_models
from conftest import ROOT, random_dna
from main import main

TR = ["--mode", "train", "--model", "markov", "--epochs", "1", "--max_sequences", "64", "--seq_len", "30"]


def run_cli(entry, argv, capsys):
    rc = entry(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *needles):
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err
    assert err.rstrip().splitlines()[-1] == errors[0]  # the error is the last thing said
    for n in needles:
        assert n in errors[0], errors[0]
    assert errors[0].isprintable()


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def readonly(monkeypatch):
    """make(folder): a folder nothing can be created in (chmod 0555, and refused temporaries)."""
    roots: list[Path] = []

    def inside(d) -> bool:
        d = Path(d if d is not None else tempfile.gettempdir()).resolve()
        return any(d == r or r in d.parents for r in roots)

    real_mkstemp, real_mkdtemp = tempfile.mkstemp, tempfile.mkdtemp

    def mkstemp(*a, dir=None, **kw):
        if inside(dir):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkstemp(*a, dir=dir, **kw)

    def mkdtemp(*a, dir=None, **kw):
        if inside(dir):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkdtemp(*a, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        roots.append(folder.resolve())
        folder.chmod(0o555)
        return folder

    yield make
    for r in roots:
        r.chmod(0o755)


@pytest.fixture
def trained(genome, tmp_path, capsys):
    """A markov run's checkpoint folder (ck/) and run folder (run/)."""
    rc, _, err = run_cli(main, TR + ["--data", genome, "--checkpoint_dir", tmp_path / "ck", "--run_dir",
                                     tmp_path / "run"], capsys)
    assert rc == 0, err
    return tmp_path / "ck"


@pytest.fixture
def generated(tmp_path):
    seqs = [random_dna(30, seed=i) for i in range(40)]
    path = tmp_path / "gen.fasta"
    path.write_text("".join(f">g{i}\n{s}\n" for i, s in enumerate(seqs)))
    return path


# ---- the 19 cases of issue 15


def test_01_data_is_a_directory(tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    rc, _, err = run_cli(main, TR + ["--data", tmp_path / "adir"], capsys)
    assert_one_line_error(rc, err, "adir", "directory")


@pytest.mark.parametrize("flag,value", [("--batch", "0"), ("--batch", "-16"), ("--max_sequences", "-3"),
                                        ("--seq_len", "0"), ("--val_fraction", "1.5"), ("--budget", "inf"),
                                        ("--epochs", "two"), ("--seed", "-1"), ("--order", "11")])
def test_02_03_04_numeric_flags_are_checked_before_anything_is_written(genome, tmp_path, capsys, flag, value):
    rc, _, err = run_cli(main, TR + ["--data", genome, flag, value], capsys)
    assert_one_line_error(rc, err, flag, value)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "checkpoints").exists()


def test_05_resume_with_other_data_or_model_flags_is_an_error(trained, genome, tmp_path, capsys):
    last = trained / "markov_last.pt"
    rc, _, err = run_cli(main, ["--mode", "train", "--resume", last, "--seq_len", "40"], capsys)
    assert_one_line_error(rc, err, "--seq_len 40", "data.seq_len = 30")
    other = tmp_path / "other.fasta"
    other.write_text(">x\n" + random_dna(3000, seed=9) + "\n")
    rc, _, err = run_cli(main, ["--mode", "train", "--resume", last, "--data", other], capsys)
    assert_one_line_error(rc, err, "--data", "other.fasta")
    rc, _, err = run_cli(main, ["--mode", "train", "--resume", last, "--set", "model.order=3"], capsys)
    assert_one_line_error(rc, err, "model.order=3")
    # the same values, and the settings a resumed run takes (epochs), are fine; --model is optional
    rc, out, err = run_cli(main, ["--mode", "train", "--resume", last, "--seq_len", "30", "--data", genome,
                                  "--epochs", "2"], capsys)
    assert rc == 0, err
    assert "trained markov for 2 epoch(s)" in out


def test_06_resume_into_a_read_only_checkpoint_folder_fails_before_training(trained, readonly, capsys):
    before = snapshot(trained)
    readonly(trained)
    t = time.time()
    rc, _, err = run_cli(main, ["--mode", "train", "--resume", trained / "markov_last.pt", "--epochs", "3"], capsys)
    assert_one_line_error(rc, err, str(trained), "Permission denied")
    assert "epoch" not in err.lower().replace("--epochs", "")  # no epoch ran
    assert time.time() - t < 30
    assert snapshot(trained) == before


def test_07_full_disk_keeps_the_old_checkpoint_and_leaves_no_temporary(trained, monkeypatch, capsys):
    before = snapshot(trained)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    rc, _, err = run_cli(main, ["--mode", "train", "--resume", trained / "markov_last.pt", "--epochs", "2"], capsys)
    assert_one_line_error(rc, err, "markov_", "No space left on device")
    assert snapshot(trained) == before  # nothing replaced, no .tmp left


@pytest.mark.parametrize("flag,value", [("--temperature", "nan"), ("--temperature", "0"), ("--seq_len", "0"),
                                        ("--n", "0"), ("--gc", "1.2")])
def test_08_09_gen_flags(trained, tmp_path, capsys, flag, value):
    rc, _, err = run_cli(main, ["--mode", "gen", "--checkpoint", trained / "markov_best.pt", flag, value,
                                "--output", tmp_path / "g.fasta"], capsys)
    assert_one_line_error(rc, err, flag)
    assert not (tmp_path / "g.fasta").exists()


def test_10_gen_output_into_a_read_only_folder(trained, tmp_path, readonly, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    (out / "g.fasta").write_text(">old\nACGT\n")
    readonly(out)
    rc, _, err = run_cli(main, ["--mode", "gen", "--checkpoint", trained / "markov_best.pt", "--n", "5",
                                "--output", out / "g.fasta"], capsys)
    assert_one_line_error(rc, err, "g.fasta", "Permission denied")
    assert (out / "g.fasta").read_text() == ">old\nACGT\n" and not (out / "g.txt").exists()


def test_11_gen_output_is_a_directory(trained, tmp_path, capsys):
    (tmp_path / "outdir").mkdir()
    rc, _, err = run_cli(main, ["--mode", "gen", "--checkpoint", trained / "markov_best.pt", "--n", "5",
                                "--output", tmp_path / "outdir"], capsys)
    assert_one_line_error(rc, err, "outdir", "directory")


@pytest.fixture
def bad_checkpoints(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("these are my notes, not a checkpoint\n" * 20)
    pickled = tmp_path / "pickled.pt"
    torch.save({"family": "markov", "members": [], "obj": argparse.Namespace(x=1)}, pickled)
    return text, pickled


def test_12_13_unreadable_and_pickled_checkpoints(bad_checkpoints, capsys):
    text, pickled = bad_checkpoints
    rc, _, err = run_cli(main, ["--mode", "gen", "--checkpoint", text], capsys)
    assert_one_line_error(rc, err, "notes.pt", "not a dnagan checkpoint")
    rc, _, err = run_cli(main, ["--mode", "gen", "--checkpoint", pickled], capsys)
    assert_one_line_error(rc, err, "pickled.pt", "refused")
    assert "weights_only" not in err and len(err.strip().splitlines()) == 1


def test_14_analyze_into_a_read_only_folder_keeps_the_earlier_report(genome, generated, tmp_path, readonly, capsys):
    out = tmp_path / "report"
    rc, _, err = run_cli(main, ["--mode", "analyze", "--generated", generated, "--data", genome,
                                "--output-dir", out], capsys)
    assert rc == 0, err
    before = snapshot(out)
    readonly(out)
    rc, _, err = run_cli(main, ["--mode", "analyze", "--generated", generated, "--data", genome,
                                "--output-dir", out], capsys)
    assert_one_line_error(rc, err, "report", "Permission denied")
    assert snapshot(out) == before


def test_15_undecodable_path_and_a_report_written_whole(genome, generated, tmp_path, capsys):
    import json

    out = tmp_path / "report"
    rc, _, err = run_cli(main, ["--mode", "analyze", "--generated", generated, "--data", genome,
                                "--output-dir", out], capsys)
    assert rc == 0, err
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/genome\xff.fasta"))
    odd.write_bytes(genome.read_bytes())
    fewer = tmp_path / "fewer.fasta"
    fewer.write_text("".join(f">g{i}\n{random_dna(30, seed=100 + i)}\n" for i in range(25)))
    rc, _, err = run_cli(main, ["--mode", "analyze", "--generated", fewer, "--data", odd, "--output-dir", out], capsys)
    assert rc == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text(encoding="utf-8")
    assert metrics["n"] == 25 and report.count("25 generated") == 1  # both files are the new run's
    assert not list(out.glob(".staging-*"))


def test_16_17_compare_models_with_bad_checkpoints(bad_checkpoints, genome, capsys):
    for path, needle in zip(bad_checkpoints, ("not a dnagan checkpoint", "refused")):
        rc, _, err = run_cli(compare_models.main, ["--data", genome, "--checkpoints", path], capsys)
        assert_one_line_error(rc, err, path.name, needle)


def test_18_compare_models_n_zero(trained, genome, capsys):
    rc, _, err = run_cli(compare_models.main, ["--data", genome, "--checkpoints", trained / "markov_best.pt",
                                               "--n", "0"], capsys)
    assert_one_line_error(rc, err, "--n")


def test_19_analyse_distributions_real_is_a_directory(tmp_path, capsys):
    (tmp_path / "realdir").mkdir()
    gen = tmp_path / "g.txt"
    gen.write_text("0.1 0.2 0.3\n0.2 0.3 0.4\n")
    rc, _, err = run_cli(analyse_distributions.main, ["--real", tmp_path / "realdir", "--generated", gen], capsys)
    assert_one_line_error(rc, err, "realdir", "directory")


# ---- also seen in the issue


def test_checkpoints_are_0644_and_record_version_and_data_hash(trained, genome):
    from train import checkpoint as ckpt_io
    from utils import __version__

    old = os.umask(0o022)
    os.umask(old)
    for p in trained.glob("*.pt"):
        assert p.stat().st_mode & 0o777 == 0o666 & ~old
    ck = ckpt_io.load(trained / "markov_best.pt")
    assert ck["version"] == __version__ and ck["data_sha256"] == ckpt_io.file_hash(genome)


def test_a_new_run_does_not_replace_another_runs_checkpoints(trained, genome, tmp_path, capsys):
    before = snapshot(trained)
    args = TR + ["--data", genome, "--checkpoint_dir", trained, "--run_dir", tmp_path / "run2"]
    rc, _, err = run_cli(main, args, capsys)
    assert_one_line_error(rc, err, "markov_", "--overwrite")
    assert snapshot(trained) == before and not (tmp_path / "run2").exists()
    rc, _, err = run_cli(main, args + ["--overwrite", "--seed", "7"], capsys)
    assert rc == 0, err
    assert snapshot(trained) != before


def test_gen_warns_when_data_is_not_the_training_file(trained, genome, tmp_path, capsys, caplog):
    other = tmp_path / "other.fasta"
    other.write_text(">x\n" + random_dna(3000, seed=9) + "\n")
    rc, _, _ = run_cli(main, ["--mode", "gen", "--checkpoint", trained / "markov_best.pt", "--n", "5",
                              "--data", other, "--output", tmp_path / "g.fasta"], capsys)
    assert rc == 0
    warned = [r.getMessage() for r in caplog.records if "not the file" in r.getMessage()]
    assert len(warned) == 1 and "other.fasta" in warned[0]
    caplog.clear()
    rc, _, _ = run_cli(main, ["--mode", "gen", "--checkpoint", trained / "markov_best.pt", "--n", "5",
                              "--data", genome, "--output", tmp_path / "g.fasta"], capsys)
    assert rc == 0 and not [r for r in caplog.records if "not the file" in r.getMessage()]


def test_a_wrong_type_in_a_config_file_is_an_error_even_when_a_flag_overrides_it(genome, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  batch: sixteen\n")
    rc, _, err = run_cli(main, TR + ["--data", genome, "--config", cfg, "--batch", "16"], capsys)
    assert_one_line_error(rc, err, "c.yaml", "train.batch")


def test_binary_input_message_is_printable(tmp_path, capsys):
    junk = tmp_path / "junk.fasta"
    junk.write_bytes(bytes(range(256)) * 4)
    rc, _, err = run_cli(main, TR + ["--data", junk], capsys)
    assert_one_line_error(rc, err, "junk.fasta")


def test_nan_loss_stops_with_the_last_good_checkpoint(trained, monkeypatch, capsys):
    from models.registry import get_family

    fam = get_family("markov")
    monkeypatch.setattr(type(fam), "train_step", lambda self, nets, batch, ctx: {"loss": float("nan")})
    before = snapshot(trained)
    rc, _, err = run_cli(main, ["--mode", "train", "--resume", trained / "markov_last.pt", "--epochs", "2"], capsys)
    assert_one_line_error(rc, err, "epoch 2", "loss is nan", "markov_last.pt")
    assert snapshot(trained) == before


def test_a_signal_inside_a_checkpoint_write_waits_for_it():
    from utils import cli

    def job():
        with cli.critical():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            finished.append(True)
        finished.append("after")  # not reached: the held signal is raised when the section ends
        return 0

    finished: list = []
    assert cli.run(job) == 143
    assert finished == [True]


def test_orphan_temporaries_are_removed_when_a_run_starts(trained, genome, capsys):
    orphan = trained / ".markov_last.pt.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    rc, _, err = run_cli(main, ["--mode", "train", "--resume", trained / "markov_last.pt", "--epochs", "2"], capsys)
    assert rc == 0, err
    assert not orphan.exists()


# ---- SIGTERM in a real process, then --resume: the same weights as a run never interrupted


def _train_cmd(genome, ck, run, epochs):
    return [sys.executable, str(ROOT / "main.py"), "--mode", "train", "--model", "gumbel", "--data", str(genome),
            "--seq_len", "24", "--epochs", str(epochs), "--checkpoint_dir", str(ck), "--run_dir", str(run),
            "--set", "train.eval_samples=20", "--set", "model.hidden=32", "--set", "model.d_hidden=32",
            "--set", "model.warmup_steps=20", "--set", "train.batch=16"]


def test_sigterm_mid_run_resumes_bit_identically(genome, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    full = subprocess.run(_train_cmd(genome, tmp_path / "a", tmp_path / "ra", 4), env=env, capture_output=True,
                          text=True, cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    ck = tmp_path / "b"
    proc = subprocess.Popen(_train_cmd(genome, ck, tmp_path / "rb", 4), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 120
    while not (ck / "gumbel_last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # somewhere in the next epoch (or its checkpoint write)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before SIGTERM landed")
    assert proc.returncode == 143, err
    assert f"resume with: python main.py --mode train --resume {ck / 'gumbel_last.pt'}" in err
    assert "Traceback" not in err and not list(ck.glob(".*.tmp"))
    resumed = subprocess.run([sys.executable, str(ROOT / "main.py"), "--mode", "train", "--resume",
                              str(ck / "gumbel_last.pt"), "--epochs", "4"], env=env, capture_output=True, text=True,
                             cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "a" / "gumbel_last.pt", weights_only=True)["members"][0]
    b = torch.load(ck / "gumbel_last.pt", weights_only=True)["members"][0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_named_run_dir_holding_a_run_is_refused_unless_overwrite(genome, tmp_path, capsys):
    args = TR + ["--data", genome, "--checkpoint_dir", tmp_path / "ck", "--run_dir", tmp_path / "run"]
    rc, _, err = run_cli(main, args, capsys)
    assert rc == 0, err
    rc, _, err = run_cli(main, TR + ["--data", genome, "--checkpoint_dir", tmp_path / "ck2", "--run_dir", tmp_path / "run"],
                         capsys)
    assert_one_line_error(rc, err, "already holds a run", "--overwrite")
    before = (tmp_path / "run" / "metrics.csv").read_text()
    rc, _, err = run_cli(main, args + ["--overwrite", "--seed", "7"], capsys)
    assert rc == 0, err
    after = (tmp_path / "run" / "metrics.csv").read_text()
    assert after != before and len(after.splitlines()) == len(before.splitlines())  # replaced, not appended
