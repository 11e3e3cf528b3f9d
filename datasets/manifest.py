"""Any folder of audio / image / text files, described by a manifest: `--datasets manifest:PATH`.

PATH holds `manifest.csv` with columns `id`, `label`, one column per modality among `audio`
(a WAV/FLAC file), `visual` (an image file, or a folder of frame images taken in name order),
`text` (a .txt file), and optionally `split` (`train` / `val` / `test`; without it a seeded
80/10/10 split). Paths are relative to PATH. Class names are the labels, sorted. Audio and visual
are decoded exactly as for CREMA-D (see amst_bench.data.preprocess).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from amst_bench.data.files import FileDataset, Record
from amst_bench.data.splits import SPLITS, random_split
from amst_bench.options import option
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset

KNOWN_MODALITIES = ("audio", "text", "visual")


@register_dataset("manifest")
class Manifest(FileDataset):
    description = "any folder: manifest:PATH with PATH/manifest.csv (id,label,audio|visual|text[,split])"
    layout_help = "expected manifest.csv with columns id,label and audio/visual/text paths"

    @dataclass(frozen=True)
    class Options:
        split_seed: int = option(0, minimum=0)  # the seeded split, when there is no split column
        text_max_length: int = option(128, minimum=2)  # tokens per text

    def _table(self, root: Path, problems: list[str]) -> tuple[pd.DataFrame, tuple[str, ...]] | None:
        """The manifest and its modality columns; None (with problems) when it is unusable."""
        path = root / "manifest.csv"
        if not path.is_file():
            problems.append(f"{path}: missing ({self.layout_help})")
            return None
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: not a readable CSV ({exc})")
            return None
        missing = [c for c in ("id", "label") if c not in table.columns]
        if missing:
            problems.append(f"{path}: missing column(s) {', '.join(missing)}")
        modalities = [c for c in KNOWN_MODALITIES if c in table.columns]
        if not modalities:
            problems.append(
                f"{path}: no modality column; expected at least one of {', '.join(KNOWN_MODALITIES)}"
            )
        extra = set(table.columns) - {"id", "label", "split", *KNOWN_MODALITIES}
        if extra:
            problems.append(f"{path}: unknown column(s) {', '.join(sorted(extra))}")
        if missing or not modalities:
            return None
        return table, tuple(modalities)

    def find_records(self, root: Path, problems: list[str]) -> list[Record]:
        read = self._table(root, problems)
        if read is None:
            return []
        table, modalities = read
        records, seen = [], set()
        for row_number, row in enumerate(table.itertuples(index=False), start=2):
            where = f"{root / 'manifest.csv'}:{row_number}"
            if not row.id or row.id in seen:
                problems.append(f"{where}: {'empty' if not row.id else 'repeated'} id {row.id!r}")
                continue
            if not row.label:
                problems.append(f"{where}: empty label for id {row.id!r}")
                continue
            seen.add(row.id)
            split = getattr(row, "split", None) or None
            if split is not None and split not in SPLITS:
                problems.append(f"{where}: split {split!r}; expected train, val or test")
            sources = {m: root / getattr(row, m) for m in modalities}
            records.append(Record(row.id, row.label, sources, split))
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
        return "manifest" if any(r.split for r in records) else "random-80/10/10"
