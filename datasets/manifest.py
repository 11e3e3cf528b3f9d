"""Any folder of audio / image / text files, described by a manifest: `--datasets manifest:PATH`.

PATH holds `manifest.csv` with columns `id`, `label`, one column per modality among `audio`
(a WAV/FLAC file), `visual` (an image file, or a folder of frame images taken in name order),
`text` (a .txt file), and optionally `split` (`train` / `val` / `test`; without it a seeded
80/10/10 split). Paths are relative to PATH. The file is UTF-8 (a byte-order mark is allowed) with
any line ends. Labels and split names are read without surrounding spaces; class names are the
labels, sorted, and every class needs at least two samples. Audio and visual are decoded exactly
as for CREMA-D (see amst_bench.data.preprocess).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from amst_bench.data.files import FileDataset, Record
from amst_bench.data.splits import SPLITS, random_split, seeded_split_name
from amst_bench.options import option
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset

KNOWN_MODALITIES = ("audio", "text", "visual")


@dataclass(frozen=True)
class Row:
    """One data line of manifest.csv: its line number and its cells by column."""

    number: int
    cells: dict[str, str]


def _blank(cells: list[str]) -> bool:
    """A blank (or whitespace-only) line of the CSV: skipped."""
    return not cells or (len(cells) == 1 and not cells[0].strip())


@register_dataset("manifest")
class Manifest(FileDataset):
    description = "any folder: manifest:PATH with PATH/manifest.csv (id,label,audio|visual|text[,split])"
    layout_help = "expected manifest.csv with columns id,label and audio/visual/text paths"

    @dataclass(frozen=True)
    class Options:
        split_seed: int = option(0, minimum=0)  # the seeded split, when there is no split column
        text_max_length: int = option(128, minimum=2)  # tokens per text

    def _table(self, path: Path, problems: list[str]) -> tuple[list[Row], tuple[str, ...]] | None:
        """The manifest's rows and its modality columns; None (with problems) when it is unusable."""
        if not path.is_file():
            problems.append(f"{path}: missing ({self.layout_help})")
            return None
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                lines = csv.reader(f)
                header = [c.strip() for c in next(lines, [])]
                rows = [(lines.line_num, cells) for cells in lines if not _blank(cells)]
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.append(f"{path}: not a readable CSV ({exc})")
            return None
        if not header:
            problems.append(f"{path}: empty file; expected a header line ({self.layout_help})")
            return None
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            problems.append(f"{path}: repeated column(s) {', '.join(repeated)}")
            return None
        missing = [c for c in ("id", "label") if c not in header]
        if missing:
            problems.append(f"{path}: missing column(s) {', '.join(missing)}")
        modalities = tuple(c for c in KNOWN_MODALITIES if c in header)
        if not modalities:
            problems.append(
                f"{path}: no modality column; expected at least one of {', '.join(KNOWN_MODALITIES)}"
            )
        extra = set(header) - {"id", "label", "split", *KNOWN_MODALITIES}
        if extra:
            problems.append(f"{path}: unknown column(s) {', '.join(sorted(extra))}")
        if missing or not modalities:
            return None
        if not rows:
            problems.append(f"{path}: no samples, only the header line")
            return None
        table = []
        for number, cells in rows:
            if len(cells) != len(header):
                problems.append(
                    f"{path}:{number}: expected {len(header)} fields ({','.join(header)}), found {len(cells)}"
                )
                continue
            table.append(Row(number, dict(zip(header, cells, strict=True))))
        return table, modalities

    def find_records(self, root: Path, problems: list[str]) -> list[Record]:
        path = root / "manifest.csv"
        read = self._table(path, problems)
        if read is None:
            return []
        table, modalities = read
        records, seen, samples_of = [], set(), Counter()
        for row in table:
            where = f"{path}:{row.number}"
            sample, label = row.cells["id"], row.cells["label"].strip()
            if not sample or sample in seen:
                problems.append(f"{where}: {'empty' if not sample else 'repeated'} id {sample!r}")
                continue
            if not label:
                problems.append(f"{where}: empty label for id {sample!r}")
                continue
            seen.add(sample)
            samples_of[label] += 1
            split = row.cells.get("split", "").strip() or None
            if split is not None and split not in SPLITS:
                problems.append(f"{where}: split {split!r}; expected train, val or test")
            empty = [m for m in modalities if not row.cells[m].strip()]
            for m in empty:
                problems.append(f"{path} line {row.number} (id {sample}): empty {m!r} path")
            if empty:
                continue
            sources = {m: root / row.cells[m] for m in modalities}
            records.append(Record(sample, label, sources, split))
        for label, count in sorted(samples_of.items()):
            if count == 1:
                problems.append(
                    f"{path}: class {label!r} has a single sample; a class needs at least two, "
                    "so that it can appear in both train and test"
                )
        return records

    def make_splits(
        self, records: list[Record], protocol: Protocol, problems: list[str]
    ) -> dict[str, list[str]]:
        given = [r for r in records if r.split]
        if given and len(given) != len(records):
            problems.append(
                f"{self.root / 'manifest.csv'}: the split column is filled for only "
                f"{len(given)} of {len(records)} rows"
            )
        if given:
            return {s: sorted(r.id for r in records if r.split == s) for s in SPLITS}
        return random_split(
            [r.id for r in records], protocol.split, self.options.split_seed
        )

    def modalities_of(self, records: list[Record]) -> tuple[str, ...]:
        """The manifest's modality columns (every record has a path for each)."""
        return tuple(m for m in KNOWN_MODALITIES if records and m in records[0].sources)

    def split_name(self, protocol: Protocol, records: Sequence[Record] = ()) -> str:
        if any(r.split for r in records):
            return "manifest"
        return seeded_split_name("random", protocol.split, self.options.split_seed)
