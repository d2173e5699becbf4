"""Property-based tests (hypothesis) over the readers and the command line: random bytes, FASTA-like
text with random alphabets, line endings, empty records and headers, and random values for every
numeric flag. The only outcomes allowed: success, or exit code 2 with one printable error line.
Anything else (a traceback, another exit code) fails the test. 560 generated inputs in all.
"""
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from main import build_parser, main
from utils.errors import DnaganError
from utils.sequences import load_sequences, read_records, read_sequences

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                derandomize=True)


def fasta_like():
    """Text that is nearly FASTA: headers (sometimes empty), bodies over random alphabets, random
    line endings, empty records, stray blank lines, lower case, gaps, digits."""
    alphabet = st.sampled_from(["ACGT"] * 6 + ["acgt", "acgtn", "ACGTN-", "ACGU", "ACGTRYKM", string.ascii_letters, "ACGT0123 ",
                                "ACGT\t*", "\u00e9ACGT"])
    record = st.tuples(st.text(st.characters(blacklist_categories=("Cs",)), max_size=20), alphabet,
                       st.integers(0, 300), st.integers(0, 2**31))

    @st.composite
    def build(draw):
        eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        out = []
        for header, alpha, n, seed in draw(st.lists(record, min_size=0, max_size=4)):
            rng = np.random.default_rng(seed)
            body = "".join(rng.choice(list(alpha), n)) if n else ""
            width = int(rng.integers(10, 90))
            lines = [body[i:i + width] for i in range(0, len(body), width)]
            if draw(st.booleans()):
                lines.insert(0, "")
            out.append(">" + header.replace("\n", " ").replace("\r", " ") + eol + eol.join(lines))
        prefix = draw(st.sampled_from(["", ">", "junk" + eol, eol]))
        return prefix + eol.join(out) + draw(st.sampled_from(["", eol]))

    return build()


def one_error_line(err: str) -> None:
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].isprintable(), err


@settings(FUZZ, max_examples=150)
@given(data=st.one_of(st.binary(max_size=2000), fasta_like().map(lambda t: t.encode("utf-8", "surrogatepass"))),
       suffix=st.sampled_from([".fasta", ".fa", ".gb", ".txt", ".fasta.gz", ""]))
def test_readers_take_any_bytes(tmp_path, data, suffix):
    path = tmp_path / f"in{suffix}"
    path.write_bytes(data)
    for name, read in (("read_records", read_records), ("read_sequences", read_sequences),
                       ("load_sequences", lambda p: load_sequences(p, 20, val_fraction=0.2))):
        try:
            read(path)
            event(f"{name} read it")
        except DnaganError as exc:
            event(f"{name} refused it")
            assert str(exc).strip() and "\n" not in str(exc).strip()


@settings(FUZZ, max_examples=150)
@given(text=fasta_like())
def test_load_sequences_on_fasta_like_text(tmp_path, text):
    path = tmp_path / "in.fasta"
    path.write_text(text, encoding="utf-8", newline="")
    try:
        d = load_sequences(path, 16, val_fraction=0.25)
    except DnaganError:
        event("refused")
        return
    event("read")
    assert d.train.ndim == 2 and d.train.shape[1] == 16 and (d.train.shape[0] > 0)
    assert d.train.min() >= 0 and d.train.max() <= 3


def numeric_flags():
    """Every numeric flag of main.py's parser with a random value: in range, out of range, not finite,
    not a number."""
    parser = build_parser()
    flags = sorted({a.option_strings[0] for a in parser._actions if a.option_strings and a.type not in (None, str)})
    value = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                      st.sampled_from(["0", "1", "-1", "0.5", "1e9", "", "abc", "2**3", "nan", "-inf", "3.0"]))
    return st.lists(st.tuples(st.sampled_from(flags), value), min_size=1, max_size=4)


@settings(FUZZ, max_examples=200)
@given(pairs=numeric_flags(), model=st.sampled_from(["markov", "stacked", "gumbel", "seqgan", "masked"]))
def test_any_numeric_flag_value_is_accepted_or_one_line(capsys, pairs, model):
    argv = ["--mode", "train", "--model", model, "--show-config"]
    for flag, v in pairs:
        argv += [flag, v] if not v.startswith("-") else [f"{flag}={v}"]
    rc = main(argv)
    out, err = capsys.readouterr()
    event(f"exit {rc}")  # pytest --hypothesis-show-statistics shows how many were accepted and refused
    assert rc in (0, 2), err
    if rc == 2:
        one_error_line(err)


@settings(FUZZ, max_examples=60)
@given(data=st.one_of(fasta_like().map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=600)),
       seq_len=st.sampled_from(["8", "30", "500"]), extra=st.sampled_from([[], ["--stride", "3"], ["--val_fraction", "0"],
                                                                             ["--max_sequences", "5"]]))
def test_train_cli_on_fuzzed_files(tmp_path, capsys, data, seq_len, extra):
    path = tmp_path / "fuzz.fasta"
    path.write_bytes(data)
    run = tempfile.mkdtemp(dir=tmp_path, prefix="run")  # each example is a new run
    rc = main(["--mode", "train", "--model", "markov", "--order", "2", "--epochs", "1", "--data", str(path),
               "--seq_len", seq_len, "--overwrite", "--run_dir", run, "--sample_every", "0",
               "--set", "train.eval_samples=10", *extra])
    out, err = capsys.readouterr()
    event(f"exit {rc}")
    assert rc in (0, 2), err
    if rc == 2:
        one_error_line(err)
    else:
        assert Path("checkpoints/markov_best.pt").exists()
