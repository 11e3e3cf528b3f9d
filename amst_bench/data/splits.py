"""Train/validation/test splits: seeded 80/10/10 (by clip or by speaker), and split files.

A split is chosen once and written to split files in the official AMST format (`<id><sep><label>`
per line, e.g. `1086_ITS_SAD_XX.flv Sad`), then reused, so every run and every method sees the
same samples. Split files given by a dataset or a user are read by one reader that names file and
line for each bad line. Selection happens on validation only: a dataset never lacks a validation split.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amst_bench.atomic import atomic_write_text
from amst_bench.errors import UserError

SPLITS = ("train", "val", "test")


def _cut(items: list, fractions: Sequence[float]) -> dict[str, list]:
    n = len(items)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return {
        "train": items[:n_train],
        "val": items[n_train : n_train + n_val],
        "test": items[n_train + n_val :],
    }


def random_split(ids: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
    """Seeded random split of sample ids (sorted first, so the input order does not matter)."""
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    return {k: sorted(v) for k, v in _cut(order, fractions).items()}


def group_split(
    ids: Sequence[str], group_of: Callable[[str], str], fractions: Sequence[float], seed: int
) -> dict[str, list[str]]:
    """Seeded split in which all samples of a group (e.g. a CREMA-D actor) land in one split;
    the fractions apply to groups."""
    groups = sorted({group_of(i) for i in ids})
    random.Random(seed).shuffle(groups)
    assignment = {g: name for name, members in _cut(groups, fractions).items() for g in members}
    out: dict[str, list[str]] = {k: [] for k in SPLITS}
    for i in sorted(ids):
        out[assignment[group_of(i)]].append(i)
    return out


def read_lines(
    path: Path, problems: list[str], decode: Callable[[Path], list[str]] | None = None
) -> list[tuple[int, str]] | None:
    """Non-blank stripped lines of a text file with their numbers (from 1); None, with a problem
    naming the file, when it is missing or unreadable. `decode(path)` gives the file's lines
    (default: UTF-8, a leading BOM dropped, split by `str.splitlines`)."""
    try:
        lines = decode(path) if decode is not None else path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        problems.append(f"{path}: missing")
        return None
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text")
        return None
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror or exc})")
        return None
    return [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def seeded_split_name(kind: str, fractions: Sequence[float], seed: int) -> str:
    """'random-80/10/10', 'speaker-80/10/10-seed3': the label results and leaderboards carry, so
    that splits drawn with other fractions or seeds are never pooled."""
    name = f"{kind}-" + "/".join(f"{round(100 * f):g}" for f in fractions)
    return name if seed == 0 else f"{name}-seed{seed}"


@dataclass(frozen=True)
class SplitEntry:
    """One line of a split (or list) file: its number, the sample id and its label."""

    number: int
    id: str
    label: str


# One non-blank line (and its index among them) → (id, label); a str is what is wrong with it,
# None a line to skip (a header).
LineParser = Callable[[int, str], "tuple[str, str] | str | None"]
LineReader = Callable[[Path, list[str]], "list[tuple[int, str]] | None"]


def read_split_entries(
    path: Path,
    parse: LineParser,
    problems: list[str],
    repeated: Callable[[str, str], str] | None = None,
    read: LineReader = read_lines,
) -> list[SplitEntry] | None:
    """The entries of a split file, in file order; None when it cannot be read (a problem names
    it). Each bad line is a problem `<file>:<line>: <what parse says>`. With `repeated`, a line
    repeating an earlier (id, label) is ignored with a warning `<file>:<line>: <repeated(id,
    label)> is listed again; ignored`; without it, repeats are kept."""
    lines = read(path, problems)
    if lines is None:
        return None
    entries: list[SplitEntry] = []
    seen: set[tuple[str, str]] = set()
    for index, (number, line) in enumerate(lines):
        parsed = parse(index, line)
        if parsed is None:
            continue
        if isinstance(parsed, str):
            problems.append(f"{path}:{number}: {parsed}")
            continue
        if repeated is not None:
            if parsed in seen:
                warnings.warn(f"{path}:{number}: {repeated(*parsed)} is listed again; ignored", stacklevel=3)
                continue
            seen.add(parsed)
        entries.append(SplitEntry(number, *parsed))
    return entries


def read_split_file(path: Path, suffix: str = "", problems: list[str] | None = None) -> list[tuple[str, str]]:
    """(id, label) pairs from a split file of lines `<id><suffix> <label>`, e.g. the official
    CREMA-D `1086_ITS_SAD_XX.flv Sad` (suffix '.flv' is stripped from the id). Each bad line (and
    an unreadable file) is appended to `problems` naming file and line; without a list to collect
    them, the first one raises UserError. A repeated line is ignored with a warning, as every
    split reader does, so no sample is trained twice."""

    def parse(index: int, line: str) -> tuple[str, str] | str:
        parts = line.split()
        if len(parts) < 2:
            return f"expected '<id> <label>', got {line!r}"
        sample = parts[0][: -len(suffix)] if suffix and parts[0].endswith(suffix) else parts[0]
        return sample, " ".join(parts[1:])

    collected: list[str] = [] if problems is None else problems
    start = len(collected)
    entries = read_split_entries(path, parse, collected, repeated=lambda sample, label: sample) or []
    if problems is None and len(collected) > start:
        raise UserError(collected[start])
    return [(e.id, e.label) for e in entries]


def write_split_files(
    folder: Path, splits: dict[str, list[str]], labels: dict[str, str], suffix: str = ""
) -> None:
    for name in SPLITS:
        lines = "".join(f"{i}{suffix} {labels[i]}\n" for i in splits[name])
        atomic_write_text(folder / f"{name}.txt", lines)


def read_split_folder(folder: Path, suffix: str = "") -> dict[str, list[str]]:
    return {name: [i for i, _ in read_split_file(folder / f"{name}.txt", suffix)] for name in SPLITS}


def stored_seeded_split(
    folder: Path,
    labels: Mapping[str, str],
    fractions: Sequence[float],
    seed: int,
    problems: list[str],
    group_of: Callable[[str], str] | None = None,
    suffix: str = "",
) -> dict[str, list[str]]:
    """A seeded split (by sample, or by group such as a speaker when `group_of` is given), drawn
    once and written to split files in `folder`, then read back on every later call, so all runs
    and methods see the same samples. A split drawn while `problems` is not empty is not kept."""
    if all((folder / f"{s}.txt").is_file() for s in SPLITS):
        splits = read_split_folder(folder, suffix=suffix)
    else:
        ids = sorted(labels)
        if group_of is not None:
            splits = group_split(ids, group_of, fractions, seed)
        else:
            splits = random_split(ids, fractions, seed)
        if not problems:  # a split drawn from broken data is not kept for later runs
            write_split_files(folder, splits, dict(labels), suffix=suffix)
    check_split_ids(folder, splits, labels, problems)
    return splits


def read_given_split(
    folder: Path,
    files: Mapping[str, str],
    read: Callable[[Path, list[str]], list[tuple[str, str]]],
    labels: Mapping[str, str],
    problems: list[str],
    dataset: str,
) -> dict[str, list[str]]:
    """A split given as files (`folder / files[split]`), read with `read(path, problems) -> [(id,
    label)]` and checked against the dataset: every id must be a sample with that label. Accepted
    as given otherwise; ids in two splits are warned about (the official CREMA-D files have 4
    clips in both val and test)."""
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
    warn_overlaps(splits, f"{dataset} split files", stacklevel=3)
    return splits


def overlaps(splits: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], set[str]]:
    """Ids that stand in two splits (the official CREMA-D files have 4 in both val and test)."""
    found = {}
    for a_i, a in enumerate(SPLITS):
        for b in SPLITS[a_i + 1 :]:
            both = set(splits[a]) & set(splits[b])
            if both:
                found[(a, b)] = both
    return found


def warn_overlaps(
    splits: Mapping[str, Sequence[str]],
    where: str,
    noun: str = "sample",
    shown: Callable[[str], str] = str,
    key: Callable[[str], Any] | None = None,
    stacklevel: int = 2,
) -> None:
    """A warning per two splits that share ids, which are accepted as given: `<where>: N
    <noun>(s) in both A and B (e.g. <the first id by `key`, as `shown`>); accepted as given`.
    `stacklevel` counts from the caller, as warnings.warn's."""
    for (a, b), both in overlaps(splits).items():
        warnings.warn(
            f"{where}: {len(both)} {noun}(s) in both {a} and {b} "
            f"(e.g. {shown(sorted(both, key=key)[0])}); accepted as given",
            stacklevel=stacklevel + 1,
        )


def check_split_ids(
    folder: Path,
    splits: Mapping[str, Sequence[str]],
    labels: Mapping[str, str],
    problems: list[str],
    noun: str = "sample",
    shown: Callable[[str], str] = str,
) -> None:
    """A problem when the stored split files in `folder` name ids that are not samples of the
    dataset (they are deleted to draw a new split)."""
    unknown = sorted({i for s in SPLITS for i in splits[s]} - set(labels))
    if unknown:
        problems.append(
            f"{folder}: split files name {len(unknown)} {noun}(s) not in the dataset, "
            f"e.g. {shown(unknown[0])} (delete the folder to draw a new split)"
        )
