"""Sequence data: read FASTA/GenBank/plain text (optionally gzipped), clean, split, window, encode.

Policy (also in the README):
- bases are upper-cased and U is read as T;
- records are split at every non-ACGT base (N and the IUPAC ambiguity codes) into contiguous
  ACGT segments; segments shorter than ``seq_len`` are dropped and counted;
- segments are cut into ``seq_len`` windows every ``stride`` bases;
- long records (at least 100 * seq_len bases) are split into training and validation by
  interleaved blocks of ``block_size`` bases (smaller for short genomes, so a record has at least
  20 blocks), a fraction ``val_fraction`` of the blocks going to validation, and segments are cut at
  block borders so that no window straddles the split; shorter records are assigned whole, a
  fraction ``val_fraction`` of them to validation (seeded);
- anything that is not a nucleotide letter (protein, binary, prose) is an error naming the file,
  record and 1-based position.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from Bio import SeqIO
from Bio.SeqIO.FastaIO import SimpleFastaParser

from utils.errors import InputError
from utils.outputs import write_texts

log = logging.getLogger("dnagan")

ALPHABET = "ACGT"
AMBIGUOUS = 4  # code for N and IUPAC ambiguity letters: split points, not errors
INVALID = 255  # code for anything that is not a nucleotide letter

FASTA_EXT = {".fa", ".fasta", ".fna", ".ffn", ".fas", ".faa_dna"}
GENBANK_EXT = {".gb", ".gbk", ".genbank", ".gbff"}

# Byte -> code lookup table: the fast path for encoding.
_LUT = np.full(256, INVALID, dtype=np.uint8)
for _i, _b in enumerate(ALPHABET):
    _LUT[ord(_b)] = _LUT[ord(_b.lower())] = _i
_LUT[ord("U")] = _LUT[ord("u")] = 3
for _b in "NRYSWKMBDHV-.":
    _LUT[ord(_b)] = _LUT[ord(_b.lower())] = AMBIGUOUS
_DECODE = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
_COMPLEMENT = np.array([3, 2, 1, 0], dtype=np.uint8)


def encode(seq: str) -> np.ndarray:
    """Encode a string to codes: 0-3 for A,C,G,T (U as T), 4 for N/IUPAC, 255 for anything else."""
    return _LUT[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]


def encode_strict(seq: str, *, where: str = "sequence") -> np.ndarray:
    """Encode an all-ACGT string, raising InputError naming the first bad base's 1-based position."""
    codes = encode(seq)
    bad = np.flatnonzero(codes > 3)
    if bad.size:
        p = int(bad[0])
        raise InputError(f"{where}: position {p + 1}: {seq[p]!r} is not one of A, C, G, T")
    return codes


def decode(codes) -> list[str]:
    """Decode a (N, L) or (L,) array/tensor of codes 0-3 back to strings."""
    arr = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    arr = np.atleast_2d(arr).astype(np.uint8)
    if arr.size and arr.max() > 3:
        raise ValueError("decode() takes codes 0-3 only")
    chars = _DECODE[arr]
    return [row.tobytes().decode("ascii") for row in chars]


def one_hot(codes: torch.Tensor, n: int = 4) -> torch.Tensor:
    """(N, L) integer codes -> (N, L, n) float one-hot."""
    return torch.nn.functional.one_hot(codes.long(), n).float()


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of (N, L) codes 0-3."""
    return _COMPLEMENT[codes[..., ::-1]]


# ----------------------------------------------------------------------------------------------
# Reading


def _open_text(path: Path):
    raw = path.open("rb")
    head = raw.read(2)
    raw.seek(0)
    if head == b"\x1f\x8b":
        raw = gzip.open(raw)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)


def _sniff(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in FASTA_EXT:
        return "fasta"
    if ext in GENBANK_EXT:
        return "genbank"
    with _open_text(path) as fh:
        try:
            for line in fh:
                s = line.strip()
                if not s:
                    continue
                if s.startswith(">"):
                    return "fasta"
                if s.startswith("LOCUS"):
                    return "genbank"
                return "lines"
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
    return "lines"


def read_records(path: str | os.PathLike, *, titles: bool = False) -> list[tuple]:
    """Read (record id, sequence string) pairs from FASTA, GenBank or one-sequence-per-line text;
    with ``titles``, (record id, header line, sequence) (GenBank: id and description).

    The format comes from the extension (.fa/.fasta/.fna, .gb/.gbk, optionally .gz) or, failing
    that, from the content. Gzip is recognised by its magic bytes whatever the name.
    """
    path = Path(normalize_path(path))
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a sequence file")
    fmt = _sniff(path)
    records: list[tuple[str, str]] = []
    try:
        with _open_text(path) as fh:
            if fmt == "fasta":
                for title, seq in SimpleFastaParser(fh):
                    rid = title.split(None, 1)[0] if title.strip() else f"record{len(records) + 1}"
                    records.append((rid, title, seq))
            elif fmt == "genbank":
                for rec in SeqIO.parse(fh, "genbank"):
                    records.append((rec.id, f"{rec.id} {rec.description}", str(rec.seq)))
            else:
                for i, line in enumerate(fh, 1):
                    s = line.strip()
                    if s and not s.startswith("#"):
                        records.append((f"line{i}", "", s.replace(" ", "")))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    except ValueError as exc:  # Biopython parse errors
        raise InputError(f"{path}: not valid {fmt} ({exc})") from None
    if not records:
        raise InputError(f"{path}: no sequences found")
    return records if titles else [(rid, seq) for rid, _, seq in records]


_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[ord(c) for c in " \t\r\n\v\f"]] = True


def read_fasta_codes(path: Path, *, titles: bool = False) -> list[tuple]:
    """(record id, codes) of a FASTA file (plain or gzip) without Python strings: the whole file is
    one byte array, records are cut at header lines, whitespace is dropped and the bytes go through
    the lookup table. Hundreds of MB/s; the same codes as read_records + encode. Letters that are not
    nucleotides are an InputError naming the record and the 1-based position."""
    with path.open("rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    buf = np.frombuffer(raw, dtype=np.uint8)
    gt = np.flatnonzero(buf == ord(">"))
    heads = gt[(gt == 0) | (buf[np.maximum(gt - 1, 0)] == ord("\n"))]
    out = []
    for i, h in enumerate(heads.tolist()):
        end_head = raw.find(b"\n", h)
        end_head = len(raw) if end_head < 0 else end_head
        stop = int(heads[i + 1]) if i + 1 < len(heads) else len(raw)
        title = raw[h + 1 : end_head].decode("utf-8", "replace").strip()
        rid = title.split(None, 1)[0] if title else f"record{len(out) + 1}"
        body = buf[end_head + 1 : stop]
        letters = body[~_WHITESPACE[body]]
        codes = check_codes(path, rid, _LUT[letters], letters)
        out.append((rid, title, codes) if titles else (rid, codes))
    if heads.size and heads[0] > 0 and raw[: heads[0]].strip():
        raise InputError(f"{path}: not valid fasta (text before the first '>' header)")
    return out


def normalize_path(path: str | os.PathLike) -> str:
    """Accept Windows-style paths from the prototype's docs (data\\training20.fasta)."""
    s = str(path)
    if "\\" in s and not Path(s).exists():
        s = s.replace("\\", "/")
    return s


def encode_record(path, rid: str, seq: str) -> np.ndarray:
    """Encode one record, rejecting protein and non-sequence input with file, record and position."""
    letters = np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)
    return check_codes(path, rid, _LUT[letters], letters)


_GAP_LETTERS = np.zeros(256, dtype=bool)
_GAP_LETTERS[[ord(c) for c in "Nn-."]] = True


def check_codes(path, rid: str, codes: np.ndarray, letters: np.ndarray) -> np.ndarray:
    """codes (from the letters' bytes) unless the record is not DNA: an InputError naming the first
    letter that is no nucleotide, or the first ambiguity code where there are too many of them."""
    bad = np.flatnonzero(codes == INVALID)
    if bad.size:
        p = int(bad[0])
        raise InputError(
            f"{path}: record {rid!r}, position {p + 1}: {chr(letters[p])!r} is not a nucleotide "
            "(protein or non-sequence input?)"
        )
    amb = codes == AMBIGUOUS
    n_amb = int(np.count_nonzero(amb))
    if n_amb:
        other = amb & ~_GAP_LETTERS[letters]
        n_other = int(np.count_nonzero(other))
        # Runs of N are assembly gaps; many other IUPAC letters means protein spelled with
        # letters that happen to be nucleotide codes (M, K, R, V, W, H, D ...).
        if n_other > max(10, 0.1 * codes.size):
            p = int(np.flatnonzero(other)[0])
            raise InputError(
                f"{path}: record {rid!r}, position {p + 1}: {n_other} of {codes.size} letters are "
                "IUPAC ambiguity codes; this does not look like DNA (protein?)"
            )
    return codes


def read_gapped(path) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """Records with gaps to fill: (id, codes, gap mask, original text). N, IUPAC codes, '-' and
    '?' are gaps; anything else that is not a nucleotide is an InputError with its position."""
    out = []
    for rid, seq in read_records(path):
        codes = encode(seq)
        qm = np.frombuffer(seq.encode("ascii", "replace"), np.uint8) == ord("?")
        bad = np.flatnonzero((codes == INVALID) & ~qm)
        if bad.size:
            p = int(bad[0])
            raise InputError(f"{path}: record {rid!r}, position {p + 1}: {seq[p]!r} is neither a base nor a gap (N, ?)")
        gaps = (codes == AMBIGUOUS) | qm
        out.append((rid, np.where(gaps, 0, codes).astype(np.uint8), gaps, seq))
    return out


# ----------------------------------------------------------------------------------------------
# Windows and the train/validation split


@dataclass
class SequenceData:
    """Encoded training and validation windows plus the segments they came from."""

    train: np.ndarray  # (N, L) uint8 codes
    val: np.ndarray  # (M, L) uint8 codes
    train_segments: list = field(default_factory=list)  # 1-D uint8 arrays, for novelty checks
    val_segments: list = field(default_factory=list)
    n_records: int = 0
    n_dropped: int = 0  # segments shorter than seq_len
    source: str = ""
    # labelled data (utils.labels): per window, an index into label_names; None without labels
    train_labels: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    label_names: tuple = ()
    val_segment_labels: np.ndarray | None = None  # per held-out segment (val_segments): its label, for denser windows
    train_segment_labels: np.ndarray | None = None  # per training segment (train_segments): its label
    # data.select_apart: the held-out blocks that pick best.pt and stop early, dealt apart from the ones the
    # analysis judges (val_*); None when the held-out blocks do both (the default)
    select: np.ndarray | None = None
    select_segments: list | None = None
    select_labels: np.ndarray | None = None
    kind = "dna"

    @property
    def selection(self) -> tuple:
        """(windows, labels) that score each epoch (validation NLL, best.pt, early stopping): the selection
        blocks under data.select_apart, else the held-out blocks; the training windows when there are none."""
        if self.select is not None:
            return self.select, self.select_labels
        if self.val.shape[0]:
            return self.val, self.val_labels
        return self.train, self.train_labels

    def label_counts(self) -> dict:
        """{label: (training windows, held-out windows)}; empty without labels."""
        if self.train_labels is None:
            return {}
        tr = np.bincount(self.train_labels, minlength=len(self.label_names))
        va = np.bincount(self.val_labels, minlength=len(self.label_names))
        return {name: (int(a), int(b)) for name, a, b in zip(self.label_names, tr, va)}

    def select_counts(self) -> dict:
        """{label: selection windows} under data.select_apart; empty without labels or without it."""
        if self.train_labels is None or self.select_labels is None:
            return {}
        se = np.bincount(self.select_labels, minlength=len(self.label_names))
        return {name: int(c) for name, c in zip(self.label_names, se)}

    @property
    def seq_len(self) -> int:
        return int(self.train.shape[1])

    def label_gc_percentiles(self) -> list:
        """Per label, (101,) percentiles 0..100 of its training windows' GC (empty without labels):
        a model that conditions on label x GC bin draws each label's bins as its windows fill them."""
        if self.train_labels is None:
            return []
        x = self.train
        gc = ((x == 1) | (x == 2)).sum(axis=1, dtype=np.int32) / max(x.shape[1], 1)
        return [np.percentile(gc[self.train_labels == k], np.arange(101)) if (self.train_labels == k).any()
                else np.full(101, np.nan) for k in range(len(self.label_names))]

    def base_freq(self) -> np.ndarray:
        """(4,) A, C, G, T frequencies of the training windows (counted once: three comparisons over
        the codes, 35x faster than a bincount, which widens every code to 64 bits)."""
        cached = self.__dict__.get("_base_freq")
        if cached is None or cached[0] is not self.train:
            x = self.train
            counts = np.array([np.count_nonzero(x == k) for k in range(3)], dtype=np.float64)
            counts = np.append(counts, x.size - counts.sum())
            cached = (x, counts / max(x.size, 1))
            self.__dict__["_base_freq"] = cached
        return cached[1].copy()

    def gc_percentiles(self) -> np.ndarray:
        """(101,) percentiles 0..100 of the training windows' GC fractions (computed once; the data
        cache stores them, so a cached start never reads every window)."""
        cached = self.__dict__.get("_gc_percentiles")
        if cached is None or cached[0] is not self.train:
            x = self.train
            gc = ((x == 1) | (x == 2)).sum(axis=1, dtype=np.int32) / max(x.shape[1], 1)
            cached = (x, np.percentile(gc, np.arange(101)) if gc.size else np.full(101, np.nan))
            self.__dict__["_gc_percentiles"] = cached
        return cached[1].copy()

    def gc(self) -> float:
        f = self.base_freq()
        return float(f[1] + f[2])


def _runs(key: np.ndarray):
    """Start/end/value of runs of equal values in a 1-D array."""
    if key.size == 0:
        return np.zeros(0, int), np.zeros(0, int), key[:0]
    change = np.flatnonzero(key[1:] != key[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [key.size]))
    return starts, ends, key[starts]


def block_labels(n: int, block_size: int, val_fraction: float) -> np.ndarray:
    """Per-position split label (0 train, 1 validation) for a long record: interleaved blocks.

    Block i is validation when floor((i+1) f) > floor(i f), which spreads a fraction f of the
    blocks evenly along the record (f = 0.2: every 5th block).
    """
    n_blocks = -(-n // block_size)
    i = np.arange(n_blocks)
    is_val = np.floor((i + 1) * val_fraction + 1e-9) > np.floor(i * val_fraction + 1e-9)
    return np.repeat(is_val.astype(np.int8), block_size)[:n]


def is_long_record(n: int, seq_len: int) -> bool:
    """Long enough to be split by blocks: at least 20 blocks of at least 5 windows each."""
    return n >= 100 * seq_len


def effective_block(n: int, block_size: int) -> int:
    """Blocks of ``block_size`` bases, made smaller for short genomes so that every record has at
    least 20 blocks and the held-out blocks sample the whole record (lambda: 20 blocks of 2.4 kb)."""
    return max(1, min(block_size, -(-n // 20)))


def _short_record_labels(long_rec: list, val_fraction: float, rng) -> dict:
    """Short records go whole to training (0) or validation (1), at least one to each where there
    are two or more; long records are split by blocks instead."""
    short_idx = [i for i, is_long in enumerate(long_rec) if not is_long]
    if not short_idx or val_fraction <= 0:
        return {}
    n_val = int(round(val_fraction * len(short_idx)))
    if len(short_idx) >= 2:
        n_val = min(max(n_val, 1), len(short_idx) - 1)
    val_set = set(rng.choice(short_idx, size=n_val, replace=False).tolist()) if n_val else set()
    return {i: int(i in val_set) for i in short_idx}


# Files at least this big are cached encoded (below, reading is faster than hashing is worth)
CACHE_MIN_BYTES = 16 << 20
_CACHE_VERSION = 5  # bump when the windows a file gives change (4: the held-out segments' labels; 5: the training segments')


def file_sha256(path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the life of the process."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256_cached(str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _data_cache_dir() -> Path:
    from utils.outputs import cache_dir

    return cache_dir("data")


def _cache_key(path: Path, options: tuple) -> str | None:
    """The cache entry of a big file and these data options; None when not cached."""
    if os.environ.get("DNAGAN_DATA_CACHE", "1") == "0" or not path.is_file() or path.stat().st_size < CACHE_MIN_BYTES:
        return None
    h = hashlib.sha256(file_sha256(path).encode())
    h.update(repr((_CACHE_VERSION, options)).encode())
    return h.hexdigest()[:24]


def _save_cached(key: str, data: "SequenceData") -> None:
    import json
    import shutil
    import tempfile

    final = _data_cache_dir() / key
    tmp = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
        np.save(tmp / "train.npy", data.train)
        np.save(tmp / "val.npy", data.val)
        if data.select is not None:
            np.save(tmp / "select.npy", data.select)
        for name in _segment_fields(data):
            segs = getattr(data, name)
            np.save(tmp / f"{name}.npy", np.concatenate(segs) if segs else np.zeros(0, np.uint8))
            np.save(tmp / f"{name}_len.npy", np.array([len(x) for x in segs], np.int64))
        if data.train_labels is not None:
            np.save(tmp / "train_labels.npy", data.train_labels)
            np.save(tmp / "val_labels.npy", data.val_labels)
            np.save(tmp / "val_segment_labels.npy", data.val_segment_labels)
            np.save(tmp / "train_segment_labels.npy", data.train_segment_labels)
            if data.select_labels is not None:
                np.save(tmp / "select_labels.npy", data.select_labels)
        (tmp / "meta.json").write_text(json.dumps({"n_records": data.n_records, "n_dropped": data.n_dropped,
                                                   "label_names": list(data.label_names),
                                                   "base_freq": data.base_freq().tolist(),
                                                   "gc_percentiles": data.gc_percentiles().tolist()}))
        os.replace(tmp, final)  # the entry appears whole or not at all
    except OSError as exc:  # a full or read-only cache never stops a run
        log.warning("warning: could not cache the encoded windows in %s (%s)", final, exc)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _segment_fields(data: "SequenceData") -> tuple:
    return ("train_segments", "val_segments") + (("select_segments",) if data.select is not None else ())


def _load_cached(key: str, path) -> "SequenceData | None":
    import json

    d = _data_cache_dir() / key
    if not (d / "meta.json").exists():
        return None
    try:
        arr = {f.stem: np.load(f, mmap_mode="c") for f in d.glob("*.npy")}  # copy-on-write maps: no read yet
        meta = json.loads((d / "meta.json").read_text())
        segs = {n: np.split(arr[n], np.cumsum(arr[f"{n}_len"])[:-1]) if arr[f"{n}_len"].size else []
                for n in ("train_segments", "val_segments", "select_segments") if f"{n}_len" in arr}
        data = SequenceData(train=arr["train"], val=arr["val"], train_segments=segs["train_segments"],
                            val_segments=segs["val_segments"], n_records=meta["n_records"],
                            n_dropped=meta["n_dropped"], source=str(path), train_labels=arr.get("train_labels"),
                            val_labels=arr.get("val_labels"), label_names=tuple(meta.get("label_names", ())),
                            val_segment_labels=arr.get("val_segment_labels"),
                            train_segment_labels=arr.get("train_segment_labels"), select=arr.get("select"), select_segments=segs.get("select_segments"),
                            select_labels=arr.get("select_labels"))
        for name in ("base_freq", "gc_percentiles"):  # the statistics a run needs before its first step
            data.__dict__[f"_{name}"] = (data.train, np.array(meta[name], dtype=np.float64))
        return data
    except (OSError, ValueError, KeyError) as exc:
        log.warning("warning: ignoring the damaged cache entry %s (%s)", d, exc)
        return None


def read_coded(path, *, titles: bool = False) -> list[tuple]:
    """(record id, codes) of every record, or with ``titles`` (record id, header line, codes); FASTA
    by the string-free fast path."""
    path = Path(normalize_path(path))
    if path.is_file() and _sniff(path) == "fasta":
        try:
            recs = read_fasta_codes(path, titles=titles)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
        if not recs:
            raise InputError(f"{path}: no sequences found")
        return recs
    if titles:
        return [(rid, title, encode_record(path, rid, seq)) for rid, title, seq in read_records(path, titles=True)]
    return [(rid, encode_record(path, rid, seq)) for rid, seq in read_records(path)]


def load_sequences(
    path,
    seq_len: int,
    *,
    stride: int = 0,
    val_fraction: float = 0.2,
    block_size: int = 10_000,
    max_sequences: int = 0,
    seed: int = 0,
    crop: bool = False,
    labels=None,
    select_apart: bool = False,
) -> SequenceData:
    """Read a sequence file (or a list of them) and return encoded train/validation windows.

    Labels (utils.labels; ``labels`` is a LabelSource with a regex or a table, or None for the
    headers' ``label=`` and, with several files, the files' stems) give every window its record's
    label; the held-out split is then stratified: short records are assigned whole per label, long
    ones by blocks as always, and every label needs MIN_LABEL_WINDOWS training windows and a held-out one.

    crop=True treats each record as one sequence (one window from its start, as the Gumbel report
    used a FASTA of separate sequences); otherwise records are cut into windows every ``stride``.
    select_apart=True deals the held-out blocks (whole short records) alternately, per label, into two
    halves: the judged half (``val``: what analysis, compare and the benchmarks score) and the selection
    half (``select``: what scores each epoch, picks best.pt and stops early), so the blocks a model is
    judged on never chose it (docs/benchmarks.md, "Picking best.pt on the blocks the judge scores").
    Files of CACHE_MIN_BYTES or more are cached: the windows and segments are saved as .npy under
    $DNAGAN_CACHE/data (default ~/.cache/dnagan/data), keyed by the file's sha256 and these options,
    and a later call maps them (copy-on-write) instead of reading the file again.
    """
    if seq_len < 1:
        raise InputError(f"seq_len must be positive, got {seq_len}")
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if select_apart and val_fraction <= 0:
        raise InputError("data.select_apart deals the held-out blocks into a selection and a judged half: "
                         "it needs val_fraction > 0")
    stride = stride or seq_len
    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    if len(paths) == 1:
        path = paths[0]
    p = Path(normalize_path(paths[0]))
    options = (seq_len, stride, val_fraction, block_size, max_sequences, seed, crop)
    if labels is not None:
        options += labels.key()
    if select_apart:  # appended only when on: the default's cache entries keep their keys
        options += ("select_apart",)
    key = _cache_key(p, options) if len(paths) == 1 else None
    if key:
        cached = _load_cached(key, path)
        if cached is not None:
            log.info("%s: encoded windows from the cache (%s)", path, _data_cache_dir() / key)
            return cached
    data = _load_sequences(paths, seq_len, stride, val_fraction, block_size, max_sequences, seed, crop, labels,
                           select_apart)
    if key:
        _save_cached(key, data)
    return data


def _read_labelled(paths, label_source):
    """(records [(id, codes)], label names, per-record label index or None) of every file."""
    from utils.labels import record_labels

    per_file = [(normalize_path(p), read_coded(p, titles=True)) for p in paths]
    found = record_labels([(p, [(rid, title) for rid, title, _ in recs]) for p, recs in per_file], label_source)
    records = [(rid, codes) for _, recs in per_file for rid, _, codes in recs]
    if found is None:
        return records, (), None
    flat = [lab for labels in found for lab in labels]
    names = tuple(sorted(set(flat)))
    return records, names, [names.index(lab) for lab in flat]


def _split_short_records(long_rec: list, rec_label, n_labels: int, val_fraction: float, rng) -> dict:
    """Short records' sides; with labels stratified: each label's short records are split on their own."""
    if rec_label is None:
        return _short_record_labels(long_rec, val_fraction, rng)
    out = {}
    for lab in range(n_labels):
        out.update(_short_record_labels([lr or rec_label[i] != lab for i, lr in enumerate(long_rec)],
                                        val_fraction, rng))
    return out


def _cap(train, tl, heldout: list, max_sequences: int, val_fraction: float, rng):
    """--max_sequences: a seeded subset of the training windows, and of each held-out (windows, labels)
    pair in proportion (the judged half and, under data.select_apart, the selection half)."""
    if not max_sequences or train.shape[0] <= max_sequences:
        return train, tl, heldout
    keep = np.sort(rng.choice(train.shape[0], size=max_sequences, replace=False))
    train, tl = train[keep], (tl[keep] if tl is not None else None)
    n_val_cap = max(1, int(round(max_sequences * val_fraction / max(1e-9, 1 - val_fraction))))
    capped = []
    for val, vl in heldout:
        if val.shape[0] > n_val_cap:
            keep = np.sort(rng.choice(val.shape[0], size=n_val_cap, replace=False))
            val, vl = val[keep], (vl[keep] if vl is not None else None)
        capped.append((val, vl))
    return train, tl, capped


def _load_sequences(paths, seq_len, stride, val_fraction, block_size, max_sequences, seed, crop,
                    label_source=None, select_apart: bool = False) -> SequenceData:
    path = ", ".join(str(p) for p in paths)
    records, names, rec_label = _read_labelled(paths, label_source)
    rng = np.random.default_rng(seed)
    codes_list = [c for _, c in records]
    long_rec = [is_long_record(c.size, seq_len) and not crop for c in codes_list]
    short_label = _split_short_records(long_rec, rec_label, len(names), val_fraction, rng)
    # sides: 0 training, 1 held-out (judged), 2 selection (data.select_apart)
    parts, segs, window_labels = {0: [], 1: [], 2: []}, {0: [], 1: [], 2: []}, {0: [], 1: [], 2: []}
    seg_labels = {0: [], 1: []}  # the label of each training and held-out (judged) segment
    half = _SelectionDealer(select_apart)
    dropped = 0
    for i, codes in enumerate(codes_list):
        if crop:
            codes = codes[:seq_len]
        block = codes.size
        if long_rec[i] and val_fraction > 0:
            block = effective_block(codes.size, block_size)
            labels = block_labels(codes.size, block, val_fraction)
        else:
            labels = np.full(codes.size, short_label.get(i, 0), dtype=np.int8)
        key = np.where(codes < 4, labels, -1).astype(np.int8)
        starts, ends, vals = _runs(key)
        for s, e, lab in zip(starts.tolist(), ends.tolist(), vals.tolist()):
            if lab < 0:
                continue
            if e - s < seq_len:
                dropped += 1
                continue
            seg = codes[s:e]
            if lab == 1:  # a held-out block (or short record): the judged or the selection half
                lab = half.side(i, s // block, rec_label[i] if rec_label is not None else 0)
            segs[lab].append(seg)
            step = stride if lab == 0 else seq_len
            parts[lab].append(sliding_window_view(seg, seq_len)[::step])  # a view: copied once, below
            if rec_label is not None:
                window_labels[lab].append(np.full(parts[lab][-1].shape[0], rec_label[i], np.int16))
                if lab in seg_labels:
                    seg_labels[lab].append(rec_label[i])
    empty = np.zeros((0, seq_len), dtype=np.uint8)
    train = np.concatenate(parts[0]) if parts[0] else empty
    val = np.concatenate(parts[1]) if parts[1] else empty
    sel = np.concatenate(parts[2]) if parts[2] else empty
    if dropped:
        log.info("%s: dropped %d segment(s) shorter than seq_len=%d", path, dropped, seq_len)
    if train.shape[0] == 0:
        raise InputError(
            f"{path}: no training window of length {seq_len} (records split at N/IUPAC bases; "
            f"{dropped} segment(s) were shorter than seq_len)"
        )
    tl = vl = sl = None
    if rec_label is not None:
        tl, vl, sl = (np.concatenate(window_labels[k]) if window_labels[k] else np.zeros(0, np.int16) for k in (0, 1, 2))
    train, tl, held = _cap(train, tl, [(val, vl), (sel, sl)] if select_apart else [(val, vl)],
                           max_sequences, val_fraction, rng)
    (val, vl), (sel, sl) = held[0], held[-1]
    data = SequenceData(train=np.ascontiguousarray(train), val=np.ascontiguousarray(val), train_segments=segs[0],
                        val_segments=segs[1], n_records=len(records), n_dropped=dropped, source=str(path),
                        train_labels=tl, val_labels=vl, label_names=names,
                        val_segment_labels=np.array(seg_labels[1], np.int16) if rec_label is not None else None,
                        train_segment_labels=np.array(seg_labels[0], np.int16) if rec_label is not None else None)
    if select_apart:
        data.select, data.select_segments, data.select_labels = np.ascontiguousarray(sel), segs[2], sl
        half.check(data, path)
    if names:
        _check_labels(data, path, val_fraction)
    return data


class _SelectionDealer:
    """data.select_apart: held-out blocks dealt alternately, per label, to the judged half (1: the first,
    third, ... block of each label, so an odd count leaves the judge the larger half) and the selection
    half (2). A block is one unit, whatever N runs split it into; a short held-out record is one block."""

    def __init__(self, on: bool):
        self.on, self.side_of, self.dealt = on, {}, {}

    def side(self, record: int, block: int, label: int) -> int:
        if not self.on:
            return 1
        key = (record, block)
        if key not in self.side_of:
            k = self.dealt.get(label, 0)
            self.dealt[label] = k + 1
            self.side_of[key] = 1 if k % 2 == 0 else 2
        return self.side_of[key]

    def check(self, data: "SequenceData", path) -> None:
        if not data.val.shape[0] or not data.select.shape[0]:
            raise InputError(f"{path}: data.select_apart needs two held-out blocks (or records) with a whole window "
                             f"each, one to judge and one to select; this split has {len(data.val_segments)} and "
                             f"{len(data.select_segments)} (raise --val_fraction, or a shorter --seq_len)")
        log.info("%s: held-out blocks dealt apart (data.select_apart): %d windows in %d segment(s) pick best.pt, "
                 "%d in %d are judged", path, data.select.shape[0], len(data.select_segments), data.val.shape[0],
                 len(data.val_segments))


def _check_labels(data: SequenceData, path, val_fraction: float) -> None:
    """Every label has enough windows on both sides of the split; the counts go to the log."""
    from utils.labels import MIN_LABEL_WINDOWS

    counts, sel = data.label_counts(), data.select_counts()
    for name, (tr, va) in counts.items():
        if tr < MIN_LABEL_WINDOWS or (val_fraction > 0 and va < 1):
            raise InputError(f"{path}: label {name!r} has {tr} training and {va} held-out window(s); each label "
                             f"needs at least {MIN_LABEL_WINDOWS} training windows and one held-out window "
                             "(more records of that label, a shorter --seq_len, or leave it out)")
        if sel and sel[name] < 1:
            raise InputError(f"{path}: label {name!r} has {va} judged and no selection window; data.select_apart "
                             "needs two held-out blocks or records of every label (raise --val_fraction, or more "
                             "records of that label)")
    if sel:
        log.info("%s: windows per label (training / judged / selection): %s", path,
                 ", ".join(f"{k} {tr} / {va} / {sel[k]}" for k, (tr, va) in counts.items()))
    else:
        log.info("%s: windows per label (training / held-out): %s", path,
                 ", ".join(f"{k} {tr} / {va}" for k, (tr, va) in counts.items()))


def read_sequences(path, *, seq_len: int | None = None) -> np.ndarray:
    """Read a file of generated sequences (all ACGT) into (N, L) codes.

    Sequences must all have one length unless ``seq_len`` is given, in which case longer ones are
    cropped and shorter ones are an error.
    """
    records = read_records(path)
    codes = [encode_strict(s, where=f"{path}: record {rid!r}") for rid, s in records]
    lengths = {c.size for c in codes}
    if seq_len is None:
        if len(lengths) > 1:
            raise InputError(
                f"{path}: sequences have mixed lengths {sorted(lengths)[:5]}; pass --seq_len to crop"
            )
        seq_len = lengths.pop()
    short = [rid for (rid, _), c in zip(records, codes) if c.size < seq_len]
    if short:
        raise InputError(f"{path}: record {short[0]!r} is shorter than seq_len={seq_len}")
    return np.stack([c[:seq_len] for c in codes]).astype(np.uint8)


def read_real_valued(path, *, seq_len: int | None = None) -> np.ndarray:
    """Read space-separated floats, one sequence per line, all of one length -> (N, L) float32."""
    path = Path(normalize_path(path))
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file of numbers (one sequence per line)")
    rows = []
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = [float(x) for x in line.split()]
            except ValueError:
                bad = next(x for x in line.split() if not _is_float(x))
                raise InputError(f"{path}: line {i}: {bad!r} is not a number") from None
            if not np.all(np.isfinite(row)):
                raise InputError(f"{path}: line {i}: not a finite number")
            want = seq_len if seq_len is not None else (len(rows[0]) if rows else len(row))
            if len(row) != want:
                raise InputError(f"{path}: line {i}: {len(row)} values, expected {want} like the others")
            rows.append(row)
    if not rows:
        raise InputError(f"{path}: no sequences found")
    return np.asarray(rows, dtype=np.float32)


@dataclass
class SignalData:
    """Real-valued sequences (one per line of a text file), split into train and validation lines."""

    train: np.ndarray  # (N, L) float32
    val: np.ndarray  # (M, L) float32
    source: str = ""
    train_segments: list = field(default_factory=list)  # (none: novelty is a DNA notion)
    kind = "signal"

    @property
    def seq_len(self) -> int:
        return int(self.train.shape[1])

    @property
    def selection(self) -> tuple:
        """(lines, None) that score each epoch: the validation lines, or the training ones when there are none."""
        return (self.val if self.val.shape[0] else self.train), None


def is_signal_file(path) -> bool:
    """True when the first non-empty line of a (non-FASTA) text file is all numbers."""
    path = Path(normalize_path(path))
    if not path.is_file() or path.suffix.lower() in FASTA_EXT | GENBANK_EXT | {".gz"}:
        return False  # a missing path or a folder: the sequence reader names the problem
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                toks = line.split()
                return all(_is_float(t) for t in toks) and not line.lstrip().startswith(">")
    return False


def load_signals(path, seq_len: int | None = None, *, val_fraction: float = 0.2,
                 block_lines: int = 10) -> SignalData:
    """read_real_valued, then hold out a fraction of the lines as interleaved blocks of
    ``block_lines`` consecutive lines (neighbouring lines of a genome-derived file are correlated)."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    x = read_real_valued(path, seq_len=seq_len)
    lab = block_labels(x.shape[0], max(1, min(block_lines, x.shape[0] // 20 or 1)), val_fraction).astype(bool)
    if val_fraction == 0:
        lab[:] = False
    return SignalData(train=x[~lab], val=x[lab], source=str(path))


def _is_float(x: str) -> bool:
    try:
        float(x)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------------------------
# Writing (atomic: a failed run never leaves a half-written file over a good one)


def atomic_write_text(path, text: str) -> None:
    """One file, written to a temporary and renamed into place (utils.outputs.write_texts)."""
    write_texts({path: text})


def fasta_text(seqs: list[str], headers: list[str], width: int = 60) -> str:
    out = []
    for h, s in zip(headers, seqs):
        out.append(f">{h}\n")
        out.extend(s[i : i + width] + "\n" for i in range(0, len(s), width))
    return "".join(out)


def generated_fasta(seqs: list[str], *, model: str = "", checkpoint: str = "", temperature=None,
                    prefix: str = "gen", labels: list | None = None) -> str:
    """FASTA text with 60-column lines; headers name model, checkpoint, temperature and index, and
    with ``labels`` each sequence's requested label (label=NAME)."""
    meta = []
    if model:
        meta.append(f"model={model}")
    if checkpoint:
        meta.append(f"checkpoint={checkpoint}")
    if temperature is not None:
        meta.append(f"temperature={temperature:g}")
    tail = (" " + " ".join(meta)) if meta else ""
    headers = [f"{prefix}_{i + 1}{tail} index={i + 1}" + (f" label={labels[i]}" if labels else "")
               for i in range(len(seqs))]
    return fasta_text(seqs, headers)


def write_fasta(path, seqs: list[str], **header_fields) -> None:
    atomic_write_text(path, generated_fasta(seqs, **header_fields))


def write_samples(path, x) -> Path:
    """The SeqGAN prototype's text format: one sequence per line, real values space-separated
    (6 decimals) or DNA letters."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.floating):
        text = "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in x)
    else:
        text = "".join(s + "\n" for s in decode(x))
    atomic_write_text(path, text)
    return Path(path)


def lines_text(seqs: list[str]) -> str:
    """The prototype's plain generated.txt: one sequence per line."""
    return "".join(s + "\n" for s in seqs)
