"""Datasets read from files: find records, check them, decode once into a tensor cache, load.

An adapter (a subclass of FileDataset) says where the files are and how labels and splits are
made; this module does the rest the same way for every dataset:
  scan()     what the files say (records, splits, classes, every problem), as one value
  check()    every problem at once (missing or unreadable files, unknown labels, empty splits)
  prepare()  decode every record into compact tensors (fp16 fbank, uint8 frames, int tokens) in
             one cache file (amst_bench.data.cache) keyed by a hash of the settings and of the files
  load()     the cache as a DatasetBundle (training reads only the cache)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from amst_bench.data.adapter import DatasetAdapter, Progress
from amst_bench.data.augment import input_preparer
from amst_bench.data.cache import CachedSample, TensorCache
from amst_bench.data.preprocess import (
    AudioSettings,
    DecodeError,
    VisualSettings,
    audio_features,
    pad_frames,
    visual_frames,
)
from amst_bench.data.splits import SPLITS, read_given_split, seeded_split_name, stored_seeded_split
from amst_bench.data.tensors import DatasetBundle, TensorSplit
from amst_bench.errors import UserError
from amst_bench.protocol import Protocol

__all__ = ["DataProblems", "FileDataset", "Listing", "Record", "Scan", "TextSetup", "seeded_split_name"]


@dataclass(frozen=True)
class Record(CachedSample):
    """One sample: its id, label name and a file or folder per modality; `split` when the dataset
    prescribes it; `text` when the dataset's list file holds the sample's text."""

    split: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Listing:
    """What an adapter read from a dataset's own list files: its records, and the split and the
    class list when those files prescribe them (None: `make_splits` and `class_names` decide)."""

    records: list[Record]
    splits: dict[str, list[str]] | None = None
    classes: list[str] | None = None


@dataclass(frozen=True)
class TextSetup:
    """How texts become tokens: the tokenizer of --text-model and the length texts are padded or
    cut to."""

    tokenizer: Any
    signature: Any
    max_length: int

    @classmethod
    def for_protocol(cls, protocol: Protocol, max_length: int) -> TextSetup:
        from amst_bench.data.text import load_tokenizer, tokenizer_signature

        return cls(load_tokenizer(protocol.text_model), tokenizer_signature(protocol.text_model), max_length)


@dataclass(frozen=True)
class Scan:
    """What a dataset's files say under one protocol: the records, the split (ids per split and
    its label), the class names, the modalities, and every problem found. `text` is set when the
    dataset has texts."""

    records: list[Record]
    splits: dict[str, list[str]]
    split_name: str
    class_names: list[str]
    modalities: tuple[str, ...]
    problems: list[str]
    text: TextSetup | None = None


class DataProblems(UserError):
    """Every problem found in a dataset; str() is one line, `problems` has them all."""

    def __init__(self, dataset: str, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:3])
        more = (
            f" (and {len(problems) - 3} more; `amst-bench data check {dataset}` lists all)"
            if len(problems) > 3
            else ""
        )
        super().__init__(f"{dataset}: {len(problems)} problem(s): {shown}{more}")


class FileDataset(DatasetAdapter):
    """Base class of adapters over files on disk."""

    reads_files = True
    audio = AudioSettings()
    visual = VisualSettings()
    layout_help = ""  # one line: what the folder must hold (shown when it is missing)

    def resolve_options(self, raw: dict[str, str]) -> Any:
        """As for every adapter; and for an adapter with `split` and `split_dir` options, a
        split_dir alone means the split files (split=official), and a split_dir with another
        split is refused rather than ignored."""
        options = super().resolve_options(raw)
        if hasattr(options, "split") and getattr(options, "split_dir", ""):
            if "split" not in raw:
                options = dataclasses.replace(options, split="official")
            elif options.split != "official":
                raise UserError(
                    f"--set {self.name}.split_dir applies to split=official, not split={options.split}"
                )
        return options

    # ------------------------------------------------------------------ for adapters to define

    def find_records(self, root: Path, problems: list[str]) -> list[Record]:
        """All records under root; append a message to `problems` for anything wrong."""
        raise NotImplementedError

    def read_listing(self, root: Path, problems: list[str]) -> Listing:
        """The records, and what else the dataset's files prescribe (an adapter whose files give
        the split or the classes overrides this)."""
        return Listing(self.find_records(root, problems))

    def make_splits(
        self, records: list[Record], protocol: Protocol, problems: list[str]
    ) -> dict[str, list[str]]:
        """Sample ids per split."""
        raise NotImplementedError

    def split_name(self, protocol: Protocol, records: Sequence[Record] = ()) -> str:
        """The label results and leaderboards carry for the split these options and this protocol
        give (`records`: for a dataset whose files choose it)."""
        return "random-80/10/10"

    def class_names(self, records: list[Record]) -> list[str]:
        return sorted({r.label for r in records})

    def modalities_of(self, records: list[Record]) -> tuple[str, ...]:
        """The modalities a dataset has (the adapter's, unless its files say)."""
        return tuple(self.modalities)

    def split_files(
        self,
        files: dict[str, str],
        read: Callable[[Path, list[str]], list[tuple[str, str]]],
        labels: dict[str, str],
        problems: list[str],
    ) -> dict[str, list[str]]:
        """A split given as files (`--set NAME.split_dir=DIR` holding `files[split]`), checked
        against the dataset (amst_bench.data.splits.read_given_split)."""
        folder = self.split_folder(files, problems)
        if folder is None:
            return {s: [] for s in SPLITS}
        return read_given_split(folder, files, read, labels, problems, self.name)

    def seeded_split(
        self,
        labels: dict[str, str],
        protocol: Protocol,
        problems: list[str],
        kind: str = "random",
        seed: int = 0,
        group_of: Callable[[str], str] | None = None,
        suffix: str = "",
    ) -> dict[str, list[str]]:
        """A seeded split kept under `<cache dir>/<dataset>/splits/<kind>-seed<N>[-fractions]`
        (amst_bench.data.splits.stored_seeded_split)."""
        folder = self.seeded_split_folder(protocol, kind, seed)
        return stored_seeded_split(folder, labels, protocol.split, seed, problems, group_of, suffix)

    def seeded_split_folder(self, protocol: Protocol, kind: str, seed: int) -> Path:
        """Where a seeded split's files are kept: one folder per kind, seed and fractions."""
        fractions = (
            ""
            if tuple(protocol.split) == (0.8, 0.1, 0.1)
            else "-" + "-".join(f"{round(100 * f)}" for f in protocol.split)
        )
        return self.source.cache_dir / self.name / "splits" / f"{kind}-seed{seed}{fractions}"

    # ------------------------------------------------------------------ options

    def split_folder(self, files: dict[str, str], problems: list[str]) -> Path | None:
        """The folder of `--set NAME.split_dir=DIR`, or None with a problem saying what it must hold."""
        given = self.options.split_dir
        folder = Path(given).expanduser()
        if not given or not folder.is_dir():
            problems.append(
                f"--set {self.name}.split_dir={given or 'DIR'}: {'not a folder' if given else 'not given'}; "
                f"split=official needs a folder holding {', '.join(files.values())}"
            )
            return None
        return folder

    # ------------------------------------------------------------------ shared machinery

    @property
    def root(self) -> Path:
        root = self.source.root
        if root is None:
            raise UserError(
                f"dataset {self.name!r}: no folder given; use --datasets {self.name}:PATH "
                f"or --data-root DIR holding {self.name}/"
            )
        if not root.is_dir():
            raise UserError(f"dataset {self.name!r}: {root} is not a folder ({self.layout_help})")
        return root

    def scan(self, protocol: Protocol) -> Scan:
        """Read the dataset's files under `protocol`: nothing is kept on the adapter, so scans,
        checks and loads may come in any order."""
        problems: list[str] = []
        listing = self.read_listing(self.root, problems)
        records = listing.records
        modalities = self.modalities_of(records)
        text = None
        if "text" in modalities:
            text = TextSetup.for_protocol(protocol, self.options.text_max_length)
        for r in records:
            for modality, path in r.sources.items():
                if not path.exists():
                    problems.append(f"{path}: missing ({modality} of {r.id})")
        if not records:
            problems.append(f"{self.root}: no samples found ({self.layout_help})")
            splits: dict[str, list[str]] = {s: [] for s in SPLITS}
        else:
            splits = listing.splits
            if splits is None:
                splits = self.make_splits(records, protocol, problems)
            for s in SPLITS:
                if not splits.get(s):
                    problems.append(f"{self.name}: the {s} split is empty")
        return Scan(
            records=records,
            splits=splits,
            split_name=self.split_name(protocol, records),
            class_names=listing.classes if listing.classes is not None else self.class_names(records),
            modalities=modalities,
            problems=problems,
            text=text,
        )

    def check(self, protocol: Protocol, decode: bool = True) -> list[str]:
        """Every problem at once; with `decode`, each file is also read."""
        scan = self.scan(protocol)
        problems = list(scan.problems)
        if decode and not problems:
            for r in scan.records:
                for modality in r.sources:
                    try:
                        self.decode(r, modality, scan.text)
                    except DecodeError as exc:
                        problems.append(str(exc))
        return problems

    def text_of(self, record: Record) -> str:
        """The text of one sample: the record's own when its list file holds it, else its .txt
        file."""
        if record.text is not None:
            return record.text
        path = record.sources["text"]
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise DecodeError(f"{path}: unreadable text ({exc})") from None

    def decode(self, record: Record, modality: str, text: TextSetup | None = None) -> torch.Tensor:
        """One modality of one record as a compact tensor; DecodeError names the file. Text needs
        the scan's TextSetup."""
        path = record.sources[modality]
        if modality == "audio":
            return audio_features(path, self.audio).half()
        if modality == "visual":
            return visual_frames(path, self.visual)
        if modality == "text":
            from amst_bench.data.text import tokenize

            if text is None:
                raise ValueError("decoding text needs the scan's TextSetup")
            return tokenize(text.tokenizer, self.text_of(record), text.max_length)
        raise DecodeError(f"{path}: no decoder for modality {modality!r}")

    def settings(self, text: TextSetup | None = None) -> dict[str, Any]:
        out = {"audio": dataclasses.asdict(self.audio), "visual": dataclasses.asdict(self.visual)}
        if text is not None:
            out["text"] = {"max_length": text.max_length, "tokenizer": text.signature}
        return out

    @property
    def cache(self) -> TensorCache:
        return TensorCache(self.source.cache_dir / self.name, self.name)

    def cache_key(self, scan: Scan) -> str:
        return self.cache.key(self.settings(scan.text), scan.splits, scan.records)

    def prepare(self, protocol: Protocol, progress: Progress | None = None) -> Path:
        """Decode everything into the cache (once); returns the cache file."""
        return self.cache.path(self._prepare(protocol, progress)[1])

    def _prepare(self, protocol: Protocol, progress: Progress | None) -> tuple[Scan, str]:
        """The scan and the key of its cache file, decoding into it first if it is not there."""
        scan = self.scan(protocol)
        if scan.problems:
            raise DataProblems(self.name, scan.problems)
        key = self.cache_key(scan)
        if self.cache.path(key).is_file():
            return scan, key
        splits = scan.splits
        by_id = {r.id: r for r in scan.records}
        ordered = [by_id[i] for s in SPLITS for i in splits[s]]
        classes = scan.class_names
        tensors: dict[str, list[torch.Tensor]] = {m: [] for m in scan.modalities}
        decode_problems = []
        for n, r in enumerate(ordered):
            for m in scan.modalities:
                try:
                    tensors[m].append(self.decode(r, m, scan.text))
                except DecodeError as exc:
                    decode_problems.append(str(exc))
            if progress:
                progress(n + 1, len(ordered))
        if decode_problems:
            raise DataProblems(self.name, decode_problems)
        if "visual" in tensors:  # frames keep their aspect ratio: one padded canvas + true sizes
            tensors["visual"], tensors["visual_size"] = pad_frames(tensors["visual"])
        shapes = {m: {tuple(t.shape) for t in ts} for m, ts in tensors.items()}
        uneven = [m for m, s in shapes.items() if len(s) > 1]
        if uneven:
            raise DataProblems(
                self.name, [f"{m}: samples decode to different shapes {sorted(shapes[m])}" for m in uneven]
            )
        counts = {s: len(splits[s]) for s in SPLITS}
        payload = {
            "ids": [r.id for r in ordered],
            "labels": torch.tensor([classes.index(r.label) for r in ordered]),
            "counts": counts,
            "classes": classes,
            "inputs": {m: torch.stack(ts) for m, ts in tensors.items()},
            "meta": {"dataset": self.name, "settings": self.settings(scan.text), "split": scan.split_name},
        }
        self.cache.save(key, payload)
        return scan, key

    def load(self, protocol: Protocol, progress: Progress | None = None) -> DatasetBundle:
        scan, key = self._prepare(protocol, progress)
        payload = self.cache.load(key)
        counts, labels, inputs = payload["counts"], payload["labels"], payload["inputs"]
        bounds, start = {}, 0
        for s in SPLITS:
            bounds[s] = slice(start, start + counts[s])
            start += counts[s]
        parts = {s: TensorSplit({m: t[b] for m, t in inputs.items()}, labels[b]) for s, b in bounds.items()}
        prepare = input_preparer(protocol.image_size, protocol.fbank_pool)
        first_sample = {m: t[:1] for m, t in inputs.items()}
        return DatasetBundle(
            name=self.name,
            modalities=tuple(sorted(scan.modalities)),
            num_classes=len(payload["classes"]),
            train=parts["train"],
            val=parts["val"],
            test=parts["test"],
            class_names=tuple(payload["classes"]),
            split_name=scan.split_name,
            default_skip=dict(self.default_skip),
            options=self.resolved_options(),
            input_shapes={m: tuple(t.shape[1:]) for m, t in prepare(first_sample, False).items()},
            info={
                "root": str(self.root),
                "cache": payload["meta"],
                "text_vocab_size": len(scan.text.tokenizer) if scan.text is not None else 0,
            },
            prepare=prepare,
        )
