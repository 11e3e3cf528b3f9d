"""Datasets described by one sample file: a line per clip with its id, label and text, the clip's
WAV in one folder and its frames in another (the AMST repository prepares IEMOCAP and UR-FUNNY
this way). The official split files use the sample file's line format, and a random split is
stored in that format too, so a stored folder can be handed back as `split_dir`.

An adapter sets the file and folder names, its classes and split files, and defines `parse`
(one line → SampleLine, or the error in it), `draw_split` and `split_file_line`; it may add
checks on labels (`keep`) and its own splits (`other_split`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from amst_bench.atomic import atomic_write_text
from amst_bench.data.files import FileDataset, Record
from amst_bench.data.preprocess import DecodeError
from amst_bench.data.splits import (
    SPLITS,
    read_lines,
    read_split_entries,
    seeded_split_name,
    warn_overlaps,
)
from amst_bench.options import option
from amst_bench.protocol import Protocol

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class SampleLine:
    """One parsed line of a sample file (or of a split file in its format)."""

    number: int
    sample: str
    label: str
    text: str | None  # after '###', stripped; None when the line has none
    raw: str  # the line, stripped


def shown(line: str, limit: int = 100) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "…")


@dataclass(frozen=True)
class SampleRecord(Record):
    """A sample with its line of the sample file (split files are written from it)."""

    line: SampleLine | None = None


@dataclass(frozen=True)
class SampleFile:
    """The sample file, read: the kept samples and every well-formed line, by id in file order."""

    kept: dict[str, SampleLine]
    parsed: dict[str, SampleLine]


class SampleFileDataset(FileDataset):
    sample_file: ClassVar[str]
    audio_dir: ClassVar[str] = "WAV"
    frames_dir: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]
    official_files: ClassVar[dict[str, str]]
    noun: ClassVar[str] = "sample"  # "utterance", "segment": how messages name a sample

    @dataclass(frozen=True)
    class Options:
        split: str = option("random", choices=("random", "official"))
        split_seed: int = option(0, minimum=0)
        split_dir: str = ""  # the official split files (implies split=official)
        text_max_length: int = option(128, minimum=2)  # tokens per text (the AMST scripts: 128)

    # ------------------------------------------------------------------ for adapters

    def parse(self, number: int, raw: str, full: bool = True) -> SampleLine | str:
        """A line of the sample file (`full`) or of a split file, or the error in it."""
        raise NotImplementedError

    def keep(self, line: SampleLine, where: str, problems: list[str]) -> bool:
        """Whether a well-formed line is a sample of the dataset (a problem if it is wrong)."""
        return True

    def draw_split(self, records: list[SampleRecord], fractions: Sequence[float]) -> dict[str, list[str]]:
        """The random split of the records (in sample-file order)."""
        raise NotImplementedError

    def split_file_line(self, line: SampleLine) -> str:
        return line.raw

    def absent(self, sample: str, sample_path: Path, parsed: dict[str, SampleLine]) -> str:
        """Why a split file's sample is not a sample of the dataset (follows '<noun> <id>');
        `parsed`: every well-formed line of the sample file, kept or not."""
        return f" is not among the {self.noun}s of {sample_path}"

    def other_split(self, records: list[SampleRecord], problems: list[str]) -> dict[str, list[str]]:
        raise NotImplementedError

    def order_key(self, sample: str):
        return sample

    def show_label(self, label: str) -> str:
        """How messages print a label (codes like 'exc' quoted, names like FUNNY as they are)."""
        return repr(label)

    # ------------------------------------------------------------------ records

    def read_sample_file(self, root: Path, problems: list[str]) -> SampleFile | None:
        """The sample file's lines: the kept samples and every well-formed line, in file order;
        None (with a problem) when it cannot be read."""
        sample_path = root / self.sample_file
        lines = read_lines(sample_path, problems)
        if lines is None:
            return None
        kept: dict[str, SampleLine] = {}
        parsed: dict[str, SampleLine] = {}
        for number, raw in lines:
            line = self.parse(number, raw)
            if isinstance(line, str):
                problems.append(f"{sample_path}:{number}: malformed line, {line}: {shown(raw)}")
                continue
            if line.sample in parsed:
                problems.append(
                    f"{sample_path}:{number}: {self.noun} {line.sample} is listed again "
                    f"(first at line {parsed[line.sample].number})"
                )
                continue
            parsed[line.sample] = line
            if self.keep(line, f"{sample_path}:{number}", problems):
                kept[line.sample] = line
        return SampleFile(kept, parsed)

    def find_records(self, root: Path, problems: list[str]) -> list[SampleRecord]:
        folders_missing = False
        for folder in (root / self.audio_dir, root / self.frames_dir):
            if not folder.is_dir():
                problems.append(f"{folder}: missing folder ({self.layout_help})")
                folders_missing = True
        sample_path = root / self.sample_file
        sample_file = self.read_sample_file(root, problems)
        if sample_file is None or folders_missing:
            return []
        return [
            SampleRecord(
                sample,
                line.label,
                {
                    "audio": root / self.audio_dir / f"{sample}.wav",
                    "text": sample_path,
                    "visual": root / self.frames_dir / sample,
                },
                text=line.text,
                line=line,
            )
            for sample, line in sample_file.kept.items()
        ]

    def class_names(self, records: list[Record]) -> list[str]:
        return list(self.classes)  # the official stat file's classes, present or not

    def text_of(self, record: Record) -> str:
        if not record.text:
            raise DecodeError(f"{record.sources['text']}: no text for {self.noun} {record.id}")
        return record.text

    # ------------------------------------------------------------------ splits

    def split_name(self, protocol: Protocol, records: Sequence[Record] = ()) -> str:
        if self.options.split == "official":
            return "official-amst"
        return seeded_split_name(self.options.split, protocol.split, self.options.split_seed)

    def make_splits(
        self, records: list[SampleRecord], protocol: Protocol, problems: list[str]
    ) -> dict[str, list[str]]:
        labels = {r.id: r.label for r in records}
        split_name = self.split_name(protocol, records)
        if self.options.split == "official":
            folder = self.split_folder(self.official_files, problems)
            if folder is None:
                return {s: [] for s in SPLITS}
            return self.read_split_files(folder, labels, problems, split_name, stored=False)
        if self.options.split == "random":
            return self.stored_random_split(records, tuple(protocol.split), problems, split_name)
        return self.other_split(records, problems)

    def stored_random_split(
        self, records: list[SampleRecord], fractions: tuple[float, ...], problems: list[str], split_name: str
    ) -> dict[str, list[str]]:
        """`draw_split`, drawn once and kept in the official file format under the cache folder."""
        name = f"random-seed{self.options.split_seed}"
        if fractions != DEFAULT_FRACTIONS:
            name = "random-" + "-".join(f"{f:g}" for f in fractions) + f"-seed{self.options.split_seed}"
        folder = self.source.cache_dir / self.name / "splits" / name
        labels = {r.id: r.label for r in records}
        if all((folder / f).is_file() for f in self.official_files.values()):
            return self.read_split_files(folder, labels, problems, split_name, stored=True)
        splits = self.draw_split(records, fractions)
        if not problems:  # never store a split drawn from a dataset with problems
            lines = {r.id: r.line for r in records}
            for split, filename in self.official_files.items():
                text = "".join(f"{self.split_file_line(lines[s])}\n" for s in splits[split])
                atomic_write_text(folder / filename, text)
        return splits

    def read_split_files(
        self, folder: Path, labels: dict[str, str], problems: list[str], split_name: str, stored: bool
    ) -> dict[str, list[str]]:
        """Sample ids per split from files in the sample file's format, checked against it.
        `stored`: the folder is a random split kept in the cache (say how to draw it anew)."""
        hint = f" (delete {folder} to draw a new split)" if stored else ""
        sample_path = self.root / self.sample_file
        parsed: dict[str, SampleLine] | None = None  # read again only to explain an absent sample

        def parse(index: int, raw: str) -> tuple[str, str] | str:
            line = self.parse(0, raw, full=False)
            if isinstance(line, str):
                return f"malformed line, {line}: {shown(raw)}"
            return line.sample, line.label

        splits: dict[str, list[str]] = {}
        for split, filename in self.official_files.items():
            path = folder / filename
            splits[split] = []
            for entry in read_split_entries(path, parse, problems, repeated=lambda sample, _: sample) or []:
                if entry.id not in labels:
                    if parsed is None:
                        sample_file = self.read_sample_file(self.root, [])
                        parsed = sample_file.parsed if sample_file is not None else {}
                    why = self.absent(entry.id, sample_path, parsed)
                    problems.append(f"{path}:{entry.number}: {self.noun} {entry.id}{why}{hint}")
                    continue
                if entry.label != labels[entry.id]:
                    given, says = self.show_label(entry.label), self.show_label(labels[entry.id])
                    problems.append(
                        f"{path}:{entry.number}: {self.noun} {entry.id} labelled {given}, "
                        f"{sample_path} says {says}{hint}"
                    )
                    continue
                splits[split].append(entry.id)
        warn_overlaps(splits, f"{self.name} {split_name} split", self.noun, key=self.order_key)
        if stored:
            listed = {i for ids in splits.values() for i in ids}
            left = [i for i in labels if i not in listed]
            if left:
                warnings.warn(
                    f"{self.name}: {len(left)} {self.noun}(s) of {sample_path} are in no file of the "
                    f"stored split {folder} (e.g. {left[0]}); left out{hint}",
                    stacklevel=2,
                )
        return splits
