import gzip

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.errors import InputError
from utils.sequences import (decode, encode, encode_strict, load_sequences, one_hot, read_real_valued,
                             read_records, read_sequences, reverse_complement, write_fasta)
from tests.conftest import random_dna


@given(st.text(alphabet="ACGT", min_size=1, max_size=300))
@settings(max_examples=50, deadline=None)
def test_encode_decode_round_trip(s):
    assert decode(encode(s))[0] == s


def test_encode_lowercase_u_and_one_hot():
    codes = encode("acgUt")
    assert codes.tolist() == [0, 1, 2, 3, 3]
    oh = one_hot(torch.from_numpy(codes[None].astype(np.int64)))
    assert oh.shape == (1, 5, 4) and torch.equal(oh.argmax(-1)[0], torch.tensor([0, 1, 2, 3, 3]))
    assert decode(reverse_complement(encode("AACG")[None]))[0] == "CGTT"


def test_split_at_n_and_iupac(tmp_path):
    p = tmp_path / "x.fa"
    p.write_text(">r1\n" + "A" * 30 + "NN" + "C" * 25 + "R" + "G" * 8 + "\n")
    d = load_sequences(p, 10, val_fraction=0.0)
    # segments: 30 A (3 windows), 25 C (2 windows), 8 G dropped
    assert d.train.shape == (5, 10)
    assert set(decode(d.train)) == {"A" * 10, "C" * 10}
    assert d.n_dropped == 1


def test_stride_windows(tmp_path):
    p = tmp_path / "x.fa"
    p.write_text(">r\n" + "ACGT" * 10 + "\n")
    d = load_sequences(p, 8, stride=4, val_fraction=0.0)
    assert d.train.shape == (9, 8)  # starts 0, 4, ..., 32


def test_gzip_crlf_multirecord(tmp_path):
    p = tmp_path / "x.fasta.gz"
    with gzip.open(p, "wt", newline="") as fh:
        fh.write(">a desc\r\nACGTACGTAC\r\nGGGG\r\n>b\r\nTTTTTTTTTTTTTT\r\n")
    recs = read_records(p)
    assert recs == [("a", "ACGTACGTACGGGG"), ("b", "TTTTTTTTTTTTTT")]


def test_genbank(tmp_path):
    from Bio.Seq import Seq
    from Bio.SeqIO import write
    from Bio.SeqRecord import SeqRecord

    p = tmp_path / "x.gbk"
    rec = SeqRecord(Seq("ACGTTGCA" * 5), id="NC_TEST", name="TEST", description="test",
                    annotations={"molecule_type": "DNA"})
    write([rec], p, "genbank")
    assert read_records(p) == [("NC_TEST", "ACGTTGCA" * 5)]


def test_plain_lines_by_content(tmp_path):
    p = tmp_path / "seqs.txt"
    p.write_text("ACGTACGT\n\nTTGGCCAA\n")
    assert [s for _, s in read_records(p)] == ["ACGTACGT", "TTGGCCAA"]


def test_protein_is_an_error_naming_record_and_position(tmp_path):
    p = tmp_path / "prot.fasta"
    p.write_text(">ok\nACGT\n>prot\nACGTQLE\n")
    with pytest.raises(InputError, match=r"record 'prot', position 5: 'Q'"):
        load_sequences(p, 3)
    p2 = tmp_path / "prot2.fasta"
    p2.write_text(">p\n" + "MKRVWHDKRMVW" * 10 + "\n")  # only IUPAC-valid letters, but protein
    with pytest.raises(InputError, match="does not look like DNA"):
        load_sequences(p2, 3)


def test_split_never_leaks_a_window(tmp_path):
    seq = random_dna(60_000, seed=3)
    p = tmp_path / "g.fa"
    p.write_text(">g\n" + seq + "\n")
    d = load_sequences(p, 50, stride=7, val_fraction=0.2, block_size=4000)
    assert 0.15 < d.val.shape[0] * 50 / 60_000 < 0.25
    pos = {}
    for s in range(len(seq) - 49):  # where every window occurs in the genome
        pos.setdefault(seq[s : s + 50], []).append(s)
    train_cov, val_cov = np.zeros(len(seq), bool), np.zeros(len(seq), bool)
    for arr, cov in ((d.train, train_cov), (d.val, val_cov)):
        for w in decode(arr):
            for s in pos[w]:
                cov[s : s + 50] = True
    assert not (train_cov & val_cov).any()  # no base is in both a training and a validation window


def test_short_records_split_by_record(tmp_path):
    p = tmp_path / "many.fa"
    p.write_text("".join(f">s{i}\n{random_dna(40, seed=i)}\n" for i in range(20)))
    d = load_sequences(p, 30, val_fraction=0.2, crop=True)
    assert d.train.shape == (16, 30) and d.val.shape == (4, 30)
    assert not set(decode(d.train)) & set(decode(d.val))


def test_write_fasta_60_columns_and_reread(tmp_path):
    seqs = [random_dna(130, seed=1), random_dna(130, seed=2)]
    p = tmp_path / "out.fasta"
    write_fasta(p, seqs, model="markov", checkpoint="c.pt", temperature=0.8)
    lines = p.read_text().splitlines()
    assert lines[0].startswith(">gen_1 model=markov checkpoint=c.pt temperature=0.8")
    assert max(len(line) for line in lines if not line.startswith(">")) == 60
    assert decode(read_sequences(p)) == seqs


def test_real_valued_errors(tmp_path):
    p = tmp_path / "r.txt"
    p.write_text("0.1 0.2 0.3\n1 2 3\n")
    assert read_real_valued(p).shape == (2, 3)
    p.write_text("0.1 0.2 0.3\n1 2\n")
    with pytest.raises(InputError, match="line 2: 2 values, expected 3"):
        read_real_valued(p)
    p.write_text("0.1 0.2 0.3\n1 x 3\n")
    with pytest.raises(InputError, match="line 2: 'x' is not a number"):
        read_real_valued(p)


def test_encode_strict_position():
    with pytest.raises(InputError, match="position 3"):
        encode_strict("ACNT")


def test_the_fast_fasta_path_gives_the_biopython_path_codes(tmp_path):
    from utils.sequences import encode_record, read_coded, read_records

    rng = np.random.default_rng(0)
    recs = {f"r{i} some description": "".join(rng.choice(list("ACGTNacgtn"), int(rng.integers(1, 500)))) + "RY"
            for i in range(20)}
    text = "".join(f">{h}\n" + "\n".join(s[j : j + 61] for j in range(0, len(s), 61)) + "\n" for h, s in recs.items())
    for name, data in [("a.fasta", text.encode()), ("b.fa", text.replace("\n", "\r\n").encode()),
                       ("c.fasta.gz", gzip.compress(text.encode()))]:
        (tmp_path / name).write_bytes(data)
        fast = read_coded(tmp_path / name)
        slow = [(rid, encode_record(name, rid, seq)) for rid, seq in read_records(tmp_path / name)]
        assert [r for r, _ in fast] == [r for r, _ in slow] == [f"r{i}" for i in range(20)]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(fast, slow))
    # a protein letter: the same one-line error, position counted without line breaks
    (tmp_path / "p.fasta").write_text(">ok\nACGT\n>bad\nACGTACGTAC\nGTAEAC\n")
    with pytest.raises(InputError, match=r"record 'bad', position 14: 'E' is not a nucleotide"):
        read_coded(tmp_path / "p.fasta")


def test_big_files_are_cached_and_mapped_keyed_by_content(tmp_path, monkeypatch):
    from utils import sequences as S

    monkeypatch.setattr(S, "CACHE_MIN_BYTES", 1000)
    rng = np.random.default_rng(1)
    g = tmp_path / "g.fasta"
    g.write_text(">g\n" + "".join(rng.choice(list("ACGT"), 30_000)) + "\n")
    a = S.load_sequences(g, 50, seed=3)
    entries = list((tmp_path / "cache" / "data").iterdir())
    assert len(entries) == 1 and (entries[0] / "train.npy").exists()
    b = S.load_sequences(g, 50, seed=3)
    assert isinstance(b.train, np.memmap) and not isinstance(a.train, np.memmap)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    assert all(np.array_equal(x, y) for x, y in zip(a.train_segments + a.val_segments, b.train_segments + b.val_segments))
    assert (a.n_records, a.n_dropped) == (b.n_records, b.n_dropped)
    S.load_sequences(g, 60, seed=3)  # other options: another entry
    g.write_text(">g\n" + "".join(rng.choice(list("ACGT"), 30_000)) + "\n")  # other content: another entry
    c = S.load_sequences(g, 50, seed=3)
    assert len(list((tmp_path / "cache" / "data").iterdir())) == 3 and not np.array_equal(c.train, a.train)
    key = S._cache_key(g, (50, 50, 0.2, 10_000, 0, 3, False))
    (tmp_path / "cache" / "data" / key / "train.npy").write_bytes(b"damaged")
    again = S.load_sequences(g, 50, seed=3)  # a damaged entry is read from the file again, not trusted
    assert np.array_equal(again.train, c.train)
    small = tmp_path / "small.fasta"
    small.write_text(">s\nACGTACGTAC\n" * 2)
    monkeypatch.setattr(S, "CACHE_MIN_BYTES", 10_000)
    S.load_sequences(small, 5)
    assert len(list((tmp_path / "cache" / "data").iterdir())) == 3  # small files are not cached
