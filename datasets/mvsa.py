"""MVSA-Single (Niu et al., MMM 2016): 5,129 image-text pairs from Twitter, 3 sentiments (positive,
neutral, negative); visual (one image per sample) + text. Processed as in MultiSentiNet (Xu & Mao,
CIKM 2017): 4,511 pairs remain (positive 2,683, neutral 470, negative 1,358).

Obtain the data from the MVSA page of Niu et al. (MCRLab, University of Ottawa) or the copy the
AMST data guide names (`Doc/dataset/MVSA.md`: kaggle.com/datasets/vincemarcs/mvsasingle); unzip it.
Nothing has to be converted: the unzipped MVSA_Single/ folder is the layout expected here:
  labelResultAll.txt   one line per pair, `<id><TAB><text label>,<image label>`, after the header
                       line `ID<TAB>text,image`, e.g. `1<TAB>neutral,positive`; labels positive,
                       neutral or negative (read case-insensitively, spaces around the comma allowed)
  data/<id>.jpg        the tweet's image (read by content, whatever the suffix says)
  data/<id>.txt        the tweet's text
(The AMST script `new_extract_mvsa.py` copies the images to visual/ and tokenises the texts into
text_token/roberta-base/; neither folder is read here: tokens are computed into the tensor cache.)

Cleaning, as the AMST script `code/data/MVSA/gen_mvsa_txt.py` implements MultiSentiNet's rule for
the two labels of a pair (text label, image label):
  - one positive and the other negative: the pair is dropped;
  - one neutral, the other positive or negative: the non-neutral label;
  - both the same: that label.
The AMST split files (`code/data/MVSA/my_{train,val,test}_mvsa.txt`) hold 3,552 + 478 + 481 =
4,511 ids (none twice, all between 1 and 5,129) with 2,683 positive, 470 neutral and 1,358 negative:
MultiSentiNet's published counts: with every file present, the rule drops 5,129 - 4,511 = 618
pairs (the raw release itself was not at hand to count them here).
Class names are those of the AMST stat file `code/data/MVSA/stat_mvsa.txt` (positive, neutral,
negative), sorted as its loader sorts them: negative, neutral, positive.

Text files are read as the AMST scripts read them (`new_extract_mvsa.py`, `create_mvsa_json.py`):
as UTF-8, and a file that is not valid UTF-8 (tweets saved in Latin-1 / Windows code pages, which
is what the AMST scripts' fallback is for) as ISO-8859-1, which reads any bytes; one warning counts
such files. Line ends are normalised to \\n (as Python's text mode does) and the text is stripped.
Garbled characters inside a file (e.g. mojibake such as `â€™` stored as UTF-8) are kept as they
are, as the AMST code keeps them. Texts are tokenised with the RoBERTa tokenizer of --text-model,
padded / cut to 256 tokens (`text_max_length`, the AMST script's max_length; `--set
mvsa.text_max_length=N`). An empty text is accepted (it tokenises to <s></s>, as in the AMST code).
The image is resized to 224×224 and kept as uint8: visual tensor [1, 3, 224, 224] per sample (the
AMST loader's single-image branch).

Splits (`--set mvsa.split=…`):
  random    (default) seeded 80/10/10 over the 4,511 kept pairs (`--set mvsa.split_seed=N`, default
            0), written once to split files in the AMST format (`897.jpg positive`) under
            <cache dir>/mvsa/splits/random-seed<N>/ and reused; its label names the seed
            (random-80/10/10-seed3) unless it is 0
  official  the AMST repository's split files, `--set mvsa.split_dir=DIR` holding
            my_train_mvsa.txt, my_val_mvsa.txt and my_test_mvsa.txt (lines `<id>.jpg <label>`, e.g.
            `897.jpg positive`; giving split_dir alone selects this split). Accepted as given,
            with a warning for ids in two splits (none in the real files); every id must be a
            kept pair whose label agrees with labelResultAll.txt after cleaning (the AMST loader
            takes the split file's label unchecked). Read against the real AMST files, this gives
            3,552 / 478 / 481.

Deviations from the AMST code, all deliberate:
  - The AMST split was drawn once with unseeded `random.random()` per pair (hence 3,552/478/481,
    not exactly 80/10/10); the random split here is seeded and exact (3,609/451/451 of 4,511).
  - A pair kept by the cleaning whose data/<id>.jpg or data/<id>.txt is missing is a problem
    naming the file (the AMST script silently leaves out labelled ids without an image, and its
    tokeniser stops at a missing text); images in data/ without a label line are ignored, as
    there, with one warning.
  - labelResultAll.txt: the header line is skipped explicitly (the AMST script parses it as an
    id `ID` labelled `text`, which no image matches); a line that is not `<id>TAB<label>,<label>`,
    an unknown label or a repeated id is a problem naming file and line (the AMST script skips
    lines without a TAB, takes a single label as it is, the first of more than two, and lets a
    repeated id overwrite the earlier line).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amst_bench.data.adapter import DataSource, Progress
from amst_bench.data.files import FileDataset, Record, Scan, TextSetup
from amst_bench.data.preprocess import DecodeError
from amst_bench.data.splits import (
    SPLITS,
    check_split_ids,
    random_split,
    read_lines,
    read_split_entries,
    read_split_folder,
    seeded_split_name,
    warn_overlaps,
    write_split_files,
)
from amst_bench.errors import UserError
from amst_bench.options import option
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset

LABEL_FILE = "labelResultAll.txt"
DATA_DIR = "data"
CLASSES = ("negative", "neutral", "positive")  # code/data/MVSA/stat_mvsa.txt, sorted
AMST_FILES = {"train": "my_train_mvsa.txt", "val": "my_val_mvsa.txt", "test": "my_test_mvsa.txt"}
SPLIT_CHOICES = ("random", "official")
LABEL_LINE = re.compile(r"(\S+)\s+([^\s,]+)\s*,\s*([^\s,]+)")
AMST_LINE = re.compile(r"(\S+)\.jpg\s+(\S+)")
SAMPLE_ID = re.compile(r"[A-Za-z0-9_-]+")
TEXT_ENCODINGS = ("utf-8", "iso-8859-1")  # as new_extract_mvsa.py: UTF-8, else ISO-8859-1


def merge_labels(text: str, image: str) -> str | None:
    """MultiSentiNet's rule for a pair's (text, image) labels; None: the pair is dropped."""
    if {text, image} == {"positive", "negative"}:
        return None
    if text == "neutral":
        return image
    return text  # the same label, or image neutral: the text's non-neutral label


def _decode(path: Path) -> tuple[str, str]:
    """A file's content (UTF-8, else ISO-8859-1) with line ends normalised to \\n, and the
    encoding used. OSError when unreadable."""
    data = path.read_bytes()
    try:
        text, encoding = data.decode(TEXT_ENCODINGS[0]), TEXT_ENCODINGS[0]
    except UnicodeDecodeError:
        text, encoding = data.decode(TEXT_ENCODINGS[1]), TEXT_ENCODINGS[1]
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def read_text(path: Path) -> tuple[str, str]:
    """A sample's text, stripped, as the AMST scripts read it; and the encoding used."""
    text, encoding = _decode(path)
    return text.strip(), encoding


def _decoded_lines(path: Path) -> list[str]:
    """A file's lines as `_decode` reads it, a leading BOM dropped (split at \\n only)."""
    text, _ = _decode(path)
    return text.removeprefix("\ufeff").split("\n")


def _lines(path: Path, problems: list[str]) -> list[tuple[int, str]] | None:
    """Non-blank stripped lines with their numbers (from 1); None, with a problem, when unreadable."""
    return read_lines(path, problems, _decoded_lines)


def _jpg(sample: str) -> str:
    """How messages name a pair: by its image file."""
    return f"{sample}.jpg"


def _parse_amst(index: int, line: str) -> tuple[str, str] | str:
    """(id, label) of an AMST split-file line `<id>.jpg <label>`."""
    match = AMST_LINE.fullmatch(line)
    if not match:
        return f"malformed line, expected '<id>.jpg <label>': {line!r}"
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class LabelFile:
    """labelResultAll.txt, read: the kept pairs as records, every well-formed line's (text label,
    image label) by id, and the ids of every line (malformed ones too)."""

    records: list[Record]
    pairs: dict[str, tuple[str, str]]
    listed: frozenset[str]


@register_dataset("mvsa")
class MVSA(FileDataset):
    description = "MVSA-Single: image + text, 3 sentiments, MultiSentiNet-cleaned (labelResultAll.txt, data/)"
    modalities = ("text", "visual")
    default_skip = {"text": 10, "visual": 1}
    layout_help = "expected labelResultAll.txt and data/<id>.jpg + data/<id>.txt (the unzipped MVSA_Single/)"

    @dataclass(frozen=True)
    class Options:
        split: str = option("random", choices=SPLIT_CHOICES)
        split_seed: int = option(0, minimum=0)
        split_dir: str = ""  # the AMST split files (implies split=official)
        text_max_length: int = option(256, minimum=2)  # code/data/MVSA/new_extract_mvsa.py: max_length=256

    def __init__(self, source: DataSource | None = None):
        super().__init__(source)
        self._fallback: list[Path] = []  # text files read as ISO-8859-1 during one check or prepare

    # ------------------------------------------------------------------ options

    def split_name(self, protocol: Protocol, records: Sequence[Record] = ()) -> str:
        if self.options.split == "official":
            return "official-amst"
        return seeded_split_name("random", protocol.split, self.options.split_seed)

    def class_names(self, records: list[Record]) -> list[str]:
        return list(CLASSES)  # the stat file's three classes, whatever the samples hold

    def settings(self, text: TextSetup | None = None) -> dict[str, Any]:
        out = super().settings(text)
        if "text" in out:
            out["text"]["encodings"] = list(TEXT_ENCODINGS)
        return out

    # ------------------------------------------------------------------ records

    def find_records(self, root: Path, problems: list[str]) -> list[Record]:
        labelled = self._read_labels(root, problems)
        if labelled is None:
            return []
        data_dir, label_path = root / DATA_DIR, root / LABEL_FILE
        unlabelled = sorted(p.name for p in data_dir.glob("*.jpg") if p.stem not in labelled.listed)
        if unlabelled:
            warnings.warn(
                f"mvsa: {len(unlabelled)} image(s) in {data_dir} have no line in {label_path} "
                f"(e.g. {unlabelled[0]}); ignored",
                stacklevel=2,
            )
        return labelled.records

    def _read_labels(self, root: Path, problems: list[str]) -> LabelFile | None:
        """labelResultAll.txt read and cleaned; None (with a problem) when it or data/ is missing."""
        data_dir, label_path = root / DATA_DIR, root / LABEL_FILE
        if not data_dir.is_dir():
            problems.append(f"{data_dir}: missing folder ({self.layout_help})")
        lines = _lines(label_path, problems)
        if lines is None or not data_dir.is_dir():
            return None
        records, first_line, pairs = [], {}, {}
        listed = {line.split()[0] for _, line in lines}  # ids of every line, malformed ones too
        for index, (n, line) in enumerate(lines):
            match = LABEL_LINE.fullmatch(line)
            if not match:
                problems.append(
                    f"{label_path}:{n}: malformed line, expected "
                    f"'<id>TAB<text label>,<image label>': {line!r}"
                )
                continue
            sample, text, image = match.group(1), match.group(2).lower(), match.group(3).lower()
            if index == 0 and sample.lower() == "id" and (text, image) == ("text", "image"):
                continue  # the header line
            if not SAMPLE_ID.fullmatch(sample):
                problems.append(f"{label_path}:{n}: id {sample!r} is not a file name stem")
                continue
            if sample in first_line:
                problems.append(
                    f"{label_path}:{n}: id {sample} is listed again (first at line {first_line[sample]})"
                )
                continue
            first_line[sample] = n
            wrong = [x for x in (text, image) if x not in CLASSES]
            if wrong:
                problems.append(
                    f"{label_path}:{n}: unknown label {wrong[0]!r} for id {sample} "
                    f"(expected {', '.join(CLASSES)})"
                )
                continue
            pairs[sample] = (text, image)
            label = merge_labels(text, image)
            if label is not None:
                sources = {"text": data_dir / f"{sample}.txt", "visual": data_dir / f"{sample}.jpg"}
                records.append(Record(sample, label, sources))
        return LabelFile(records, pairs, frozenset(listed))

    def text_of(self, record: Record) -> str:
        path = record.sources["text"]
        try:
            text, encoding = read_text(path)
        except OSError as exc:
            raise DecodeError(f"{path}: unreadable text ({exc.strerror or exc})") from None
        if encoding != TEXT_ENCODINGS[0]:
            self._fallback.append(path)
        return text

    def _warn_fallback(self) -> None:
        if self._fallback:
            warnings.warn(
                f"mvsa: {len(self._fallback)} text file(s) are not valid UTF-8 and were read as "
                f"ISO-8859-1, as the AMST scripts read them (e.g. {self._fallback[0]})",
                stacklevel=3,
            )
        self._fallback = []

    def check(self, protocol: Protocol, decode: bool = True) -> list[str]:
        self._fallback = []
        problems = super().check(protocol, decode)
        self._warn_fallback()
        return problems

    def _prepare(self, protocol: Protocol, progress: Progress | None) -> tuple[Scan, str]:
        self._fallback = []
        try:
            return super()._prepare(protocol, progress)
        finally:
            self._warn_fallback()

    # ------------------------------------------------------------------ splits

    def make_splits(
        self, records: list[Record], protocol: Protocol, problems: list[str]
    ) -> dict[str, list[str]]:
        labels = {r.id: r.label for r in records}
        if self.options.split == "official":
            return self._official(labels, problems)
        folder = self.seeded_split_folder(protocol, "random", self.options.split_seed)
        if all((folder / f"{s}.txt").is_file() for s in SPLITS):
            try:
                splits = read_split_folder(folder, suffix=".jpg")
            except UserError as exc:
                problems.append(f"{exc} (delete {folder} to draw a new split)")
                return {s: [] for s in SPLITS}
        else:
            splits = random_split(sorted(labels), protocol.split, self.options.split_seed)
            if not problems:  # a split drawn from broken data is not kept for later runs
                write_split_files(folder, splits, labels, suffix=".jpg")
        check_split_ids(folder, splits, labels, problems, "pair", _jpg)
        return splits

    def _official(self, labels: dict[str, str], problems: list[str]) -> dict[str, list[str]]:
        value = self.options.split_dir
        folder = Path(value).expanduser()
        if not value or not folder.is_dir():
            problems.append(
                f"--set mvsa.split_dir={value}: not a folder holding {', '.join(AMST_FILES.values())}"
            )
            return {s: [] for s in SPLITS}
        labelled = self._read_labels(self.root, [])  # what the messages say of each id
        pairs = labelled.pairs if labelled is not None else {}
        splits: dict[str, list[str]] = {s: [] for s in SPLITS}
        for split, filename in AMST_FILES.items():
            path = folder / filename
            entries = read_split_entries(
                path, _parse_amst, problems, repeated=lambda sample, _: f"{sample}.jpg", read=_lines
            )
            for entry in entries or []:
                error = self._official_error(entry.id, entry.label, labels, pairs)
                if error:
                    problems.append(f"{path}:{entry.number}: {error}")
                    continue
                splits[split].append(entry.id)
        warn_overlaps(splits, "mvsa official split", "pair", _jpg, stacklevel=3)
        return splits

    @staticmethod
    def _official_error(
        sample: str, label: str, labels: dict[str, str], pairs: dict[str, tuple[str, str]]
    ) -> str | None:
        if label not in CLASSES:
            return f"unknown label {label!r} for {sample}.jpg (expected {', '.join(CLASSES)})"
        if sample in labels:
            if label != labels[sample]:
                text, image = pairs[sample]
                return (
                    f"{sample}.jpg labelled {label}, {LABEL_FILE} gives {labels[sample]} "
                    f"(text {text}, image {image})"
                )
            return None
        if sample in pairs:
            text, image = pairs[sample]
            return (
                f"{sample}.jpg is not a sample: its labels in {LABEL_FILE} disagree "
                f"(text {text}, image {image}), so the MultiSentiNet cleaning drops it"
            )
        return f"{sample}.jpg is not in {LABEL_FILE}"
