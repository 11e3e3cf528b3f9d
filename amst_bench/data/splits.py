"""Train/validation/test splits: seeded 80/10/10 (by clip or by speaker), and split files.

A split is chosen once and written to split files in the official AMST format (`<id><sep><label>`
per line, e.g. `1086_ITS_SAD_XX.flv Sad`), then reused, so every run and every method sees the
same samples. Selection happens on validation only: a dataset never lacks a validation split.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

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


def read_lines(path: Path, problems: list[str]) -> list[tuple[int, str]] | None:
    """Non-blank stripped lines of a UTF-8 text file with their numbers (from 1); None, with a
    problem naming the file, when it is missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problems.append(f"{path}: missing")
        return None
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text")
        return None
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror or exc})")
        return None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_split_file(path: Path, suffix: str = "", problems: list[str] | None = None) -> list[tuple[str, str]]:
    """(id, label) pairs from a split file of lines `<id><suffix> <label>`, e.g. the official
    CREMA-D `1086_ITS_SAD_XX.flv Sad` (suffix '.flv' is stripped from the id). Each bad line (and
    an unreadable file) is appended to `problems` naming file and line; without a list to collect
    them, the first one raises UserError."""
    collected: list[str] = [] if problems is None else problems
    start = len(collected)
    pairs = []
    for number, line in read_lines(path, collected) or []:
        parts = line.split()
        if len(parts) < 2:
            collected.append(f"{path}:{number}: expected '<id> <label>', got {line!r}")
            continue
        sample = parts[0][: -len(suffix)] if suffix and parts[0].endswith(suffix) else parts[0]
        pairs.append((sample, " ".join(parts[1:])))
    if problems is None and len(collected) > start:
        raise UserError(collected[start])
    return pairs


def write_split_files(
    folder: Path, splits: dict[str, list[str]], labels: dict[str, str], suffix: str = ""
) -> None:
    for name in SPLITS:
        lines = "".join(f"{i}{suffix} {labels[i]}\n" for i in splits[name])
        atomic_write_text(folder / f"{name}.txt", lines)


def read_split_folder(folder: Path, suffix: str = "") -> dict[str, list[str]]:
    return {name: [i for i, _ in read_split_file(folder / f"{name}.txt", suffix)] for name in SPLITS}


def overlaps(splits: dict[str, list[str]]) -> dict[tuple[str, str], set[str]]:
    """Ids that stand in two splits (the official CREMA-D files have 4 in both val and test)."""
    found = {}
    for a_i, a in enumerate(SPLITS):
        for b in SPLITS[a_i + 1 :]:
            both = set(splits[a]) & set(splits[b])
            if both:
                found[(a, b)] = both
    return found
