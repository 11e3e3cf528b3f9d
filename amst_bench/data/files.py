"""Datasets read from files: find records, check them, decode once into a tensor cache, load.

An adapter (a subclass of FileDataset) says where the files are and how labels and splits are
made; this module does the rest the same way for every dataset:
  check()    every problem at once (missing or unreadable files, unknown labels, empty splits)
  prepare()  decode every record into compact tensors (fp16 fbank, uint8 frames, int tokens) in
             one cache file keyed by a hash of the settings and of the files; written atomically,
             so a half-written cache is never used; a changed setting makes a new cache
  load()     the cache as a DatasetBundle (training reads only the cache)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from amst_bench.atomic import atomic_torch_save
from amst_bench.data.adapter import DatasetAdapter
from amst_bench.data.augment import prepare_inputs
from amst_bench.data.preprocess import (
    AudioSettings,
    DecodeError,
    VisualSettings,
    audio_features,
    pad_frames,
    visual_frames,
)
from amst_bench.data.splits import (
    SPLITS,
    group_split,
    overlaps,
    random_split,
    read_split_folder,
    write_split_files,
)
from amst_bench.data.tensors import DatasetBundle, TensorSplit
from amst_bench.errors import UserError
from amst_bench.protocol import Protocol


def seeded_split_name(kind: str, fractions, seed: int) -> str:
    """'random-80/10/10', 'speaker-80/10/10-seed3': the label results and leaderboards carry, so
    that splits drawn with other fractions or seeds are never pooled."""
    name = f"{kind}-" + "/".join(f"{round(100 * f):g}" for f in fractions)
    return name if seed == 0 else f"{name}-seed{seed}"


@dataclass(frozen=True)
class Record:
    """One sample: its id, label name and a file or folder per modality; `split` when the dataset
    prescribes it."""

    id: str
    label: str
    sources: dict[str, Path]
    split: str | None = None


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


def _file_signature(path: Path) -> list:
    if path.is_dir():
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(path.iterdir())]
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


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

    def make_splits(
        self, records: list[Record], protocol: Protocol, problems: list[str]
    ) -> dict[str, list[str]]:
        """Sample ids per split."""
        raise NotImplementedError

    def split_name(self) -> str:
        return "random-80/10/10"

    def class_names(self, records: list[Record]) -> list[str]:
        return sorted({r.label for r in records})

    def split_files(
        self,
        files: dict[str, str],
        read: Callable[[Path, list[str]], list[tuple[str, str]]],
        labels: dict[str, str],
        problems: list[str],
    ) -> dict[str, list[str]]:
        """A split given as files (`--set NAME.split_dir=DIR` holding `files[split]`), read with
        `read(path, problems) -> [(id, label)]` and checked against the dataset: every id must be
        a sample with that label. Accepted as given otherwise; ids in two splits are warned about
        (the official CREMA-D files have 4 clips in both val and test)."""
        folder = self.split_folder(files, problems)
        if folder is None:
            return {s: [] for s in SPLITS}
        splits = {}
        for split, filename in files.items():
            pairs = read(folder / filename, problems)
            for sample, label in pairs:
                if sample not in labels:
                    problems.append(f"{folder / filename}: {sample} is not in the dataset")
                elif label != labels[sample]:
                    problems.append(
                        f"{folder / filename}: {sample} labelled {label}, the dataset says {labels[sample]}"
                    )
            splits[split] = [sample for sample, _ in pairs]
        for (a, b), both in overlaps(splits).items():
            warnings.warn(
                f"{self.name} split files: {len(both)} sample(s) in both {a} and {b} "
                f"(e.g. {sorted(both)[0]}); accepted as given",
                stacklevel=2,
            )
        return splits

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
        """A seeded split (by sample, or by group such as a speaker when `group_of` is given),
        drawn once and written to split files under the cache folder, then read back on every
        later run, so all runs and methods see the same samples."""
        fractions = (
            ""
            if tuple(protocol.split) == (0.8, 0.1, 0.1)
            else "-" + "-".join(f"{round(100 * f)}" for f in protocol.split)
        )
        folder = self.source.cache_dir / self.name / "splits" / f"{kind}-seed{seed}{fractions}"
        if all((folder / f"{s}.txt").is_file() for s in SPLITS):
            splits = read_split_folder(folder, suffix=suffix)
        else:
            ids = sorted(labels)
            if group_of is not None:
                splits = group_split(ids, group_of, protocol.split, seed)
            else:
                splits = random_split(ids, protocol.split, seed)
            if not problems:  # a split drawn from broken data is not kept for later runs
                write_split_files(folder, splits, labels, suffix=suffix)
        unknown = sorted({i for s in SPLITS for i in splits[s]} - set(labels))
        if unknown:
            problems.append(
                f"{folder}: split files name {len(unknown)} sample(s) not in the dataset, "
                f"e.g. {unknown[0]} (delete the folder to draw a new split)"
            )
        return splits

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

    def scan(self, protocol: Protocol) -> tuple[list[Record], dict[str, list[str]], list[str]]:
        problems: list[str] = []
        records = self.find_records(self.root, problems)
        if "text" in self.modalities:
            self._setup_text(protocol)
        for r in records:
            for modality, path in r.sources.items():
                if not path.exists():
                    problems.append(f"{path}: missing ({modality} of {r.id})")
        if not records:
            problems.append(f"{self.root}: no samples found ({self.layout_help})")
            return records, {s: [] for s in SPLITS}, problems
        splits = self.make_splits(records, protocol, problems)
        for s in SPLITS:
            if not splits.get(s):
                problems.append(f"{self.name}: the {s} split is empty")
        return records, splits, problems

    def check(self, protocol: Protocol, decode: bool = True) -> list[str]:
        """Every problem at once; with `decode`, each file is also read."""
        records, _, problems = self.scan(protocol)
        if decode and not problems:
            for r in records:
                for modality in r.sources:
                    try:
                        self.decode(r, modality)
                    except DecodeError as exc:
                        problems.append(str(exc))
        return problems

    def _setup_text(self, protocol: Protocol) -> None:
        """The tokenizer of --text-model, and the length texts are padded / cut to."""
        from amst_bench.data.text import load_tokenizer, tokenizer_signature

        self.tokenizer = load_tokenizer(protocol.text_model)
        self.tokenizer_signature = tokenizer_signature(protocol.text_model)

    def text_of(self, record: Record) -> str:
        """The text of one sample: by default its own .txt file. Adapters whose texts sit in one
        transcript file override this (the record's text source then names that file)."""
        path = record.sources["text"]
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise DecodeError(f"{path}: unreadable text ({exc})") from None

    def decode(self, record: Record, modality: str) -> torch.Tensor:
        """One modality of one record as a compact tensor; DecodeError names the file."""
        path = record.sources[modality]
        if modality == "audio":
            return audio_features(path, self.audio).half()
        if modality == "visual":
            return visual_frames(path, self.visual)
        if modality == "text":
            from amst_bench.data.text import tokenize

            return tokenize(self.tokenizer, self.text_of(record), self.options.text_max_length)
        raise DecodeError(f"{path}: no decoder for modality {modality!r}")

    def settings(self) -> dict[str, Any]:
        out = {"audio": dataclasses.asdict(self.audio), "visual": dataclasses.asdict(self.visual)}
        if "text" in self.modalities:
            out["text"] = {"max_length": self.options.text_max_length, "tokenizer": self.tokenizer_signature}
        return out

    def cache_key(self, records: list[Record], splits: dict[str, list[str]]) -> str:
        payload = {
            "dataset": self.name,
            "settings": self.settings(),
            "splits": splits,
            "records": [
                [r.id, r.label, {m: _file_signature(p) for m, p in sorted(r.sources.items())}]
                for r in sorted(records, key=lambda r: r.id)
            ],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def cache_path(self, key: str) -> Path:
        return self.source.cache_dir / self.name / f"{key}.pt"

    def prepare(self, protocol: Protocol, progress: Callable[[int, int], None] | None = None) -> Path:
        """Decode everything into the cache (once); returns the cache file."""
        records, splits, problems = self.scan(protocol)
        if problems:
            raise DataProblems(self.name, problems)
        key = self.cache_key(records, splits)
        path = self.cache_path(key)
        if path.is_file():
            return path
        by_id = {r.id: r for r in records}
        ordered = [by_id[i] for s in SPLITS for i in splits[s]]
        classes = self.class_names(records)
        tensors: dict[str, list[torch.Tensor]] = {m: [] for m in self.modalities}
        decode_problems = []
        for n, r in enumerate(ordered):
            for m in self.modalities:
                try:
                    tensors[m].append(self.decode(r, m))
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
            "meta": {"dataset": self.name, "settings": self.settings(), "split": self.split_name()},
        }
        atomic_torch_save(path, payload)
        return path

    def load(self, protocol: Protocol, progress: Callable[[int, int], None] | None = None) -> DatasetBundle:
        payload = torch.load(self.prepare(protocol, progress), map_location="cpu", weights_only=False)
        counts, labels, inputs = payload["counts"], payload["labels"], payload["inputs"]
        bounds, start = {}, 0
        for s in SPLITS:
            bounds[s] = slice(start, start + counts[s])
            start += counts[s]
        parts = {s: TensorSplit({m: t[b] for m, t in inputs.items()}, labels[b]) for s, b in bounds.items()}
        return DatasetBundle(
            name=self.name,
            modalities=tuple(sorted(self.modalities)),
            num_classes=len(payload["classes"]),
            train=parts["train"],
            val=parts["val"],
            test=parts["test"],
            class_names=tuple(payload["classes"]),
            split_name=self.split_name(),
            default_skip=dict(self.default_skip),
            options=self.resolved_options(),
            input_shapes={
                m: tuple(t.shape[1:])
                for m, t in prepare_inputs({m: t[:1] for m, t in inputs.items()}, False).items()
            },
            info={
                "root": str(self.root),
                "cache": payload["meta"],
                "text_vocab_size": len(self.tokenizer) if "text" in self.modalities else 0,
            },
            prepare=prepare_inputs,
        )
