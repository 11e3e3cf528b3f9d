"""UR-FUNNY (Hasan et al., EMNLP 2019), version 2: 10,166 TED-talk segments, humorous or not
(5,083 each); audio + visual + text. Prepared as the official AMST code does
(`code/data/UR-FUNNY/gen_urfunny_txt.py`, `Doc/dataset/UR-FUNNY.md`).

Obtain the data from github.com/ROC-HCI/UR-FUNNY (urfunny2_videos.zip and the pickles
language_sdk.pkl, humor_label_sdk.pkl). Layout expected under the dataset folder:
  ur_funny_all_text_label.txt        one line per segment, `<id>, <label> ### <text>`, exactly the
                                     file gen_urfunny_txt.py writes (label 1 = humorous, 0 = not;
                                     the text is the segment's punchline sentence only, as that
                                     script takes `punchline_sentence` and no context)
  WAV/<id>.wav                       the segment's audio track
  IMAGE_KEPT_1_PER_SEC/<id>/*.jpg    1 frame per second, taken in name order
e.g. for each urfunny2_videos/<id>.mp4:
  ffmpeg -i urfunny2_videos/$id.mp4 -vn -c:a pcm_s16le WAV/$id.wav
  ffmpeg -i urfunny2_videos/$id.mp4 -vf fps=1 IMAGE_KEPT_1_PER_SEC/$id/%05d.jpg
Class names are FUNNY and NOTFUNNY (the AMST stat file `ur_funny_stat.txt`), sorted; label 1 is
FUNNY. Texts are tokenised with the RoBERTa tokenizer of --text-model, 128 tokens
(`extract_text_tokens.py`); 3 frames per segment as the AMST loader (`TVADataset`, pick_num 3).

Splits (`--set urfunny.split=…`):
  random    (default) the AMST split algorithm: ids sorted (numerically), shuffled by
            random.Random(seed) (`--set urfunny.split_seed=N`, default 0 as their random.seed(0)),
            then int(0.8·n) train, int(0.1·n) validation, the rest test; written once to split
            files in their format and reused. With seed 0 on their sample file this gives their
            8,132 / 1,016 / 1,018 segments.
  official  their files via `--set urfunny.split_dir=DIR`: ur_funny_train.txt, ur_funny_valid.txt,
            ur_funny_test.txt, lines `<id>, FUNNY|NOTFUNNY, ### <text>`; checked against the sample
            file (same id, same label), accepted as given, overlaps warned.
The files have no speaker field, so a speaker-disjoint split cannot be drawn from them.

Deviations: frames are taken in name order (the AMST loader lists the folder unsorted); a missing
or unreadable file is reported by name; a malformed line (no `###`, wrong fields, unknown label,
repeated id) is a problem naming file and line instead of being skipped or overwriting.
"""

from __future__ import annotations

import random
from pathlib import Path

from amst_bench.errors import UserError
from amst_bench.filedata import FileDataset, Record
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset
from amst_bench.splits import SPLITS, read_lines, write_split_files

SAMPLE_FILE = "ur_funny_all_text_label.txt"
LABELS = {"0": "NOTFUNNY", "1": "FUNNY"}
OFFICIAL_FILES = {"train": "ur_funny_train.txt", "val": "ur_funny_valid.txt", "test": "ur_funny_test.txt"}
SPLIT_CHOICES = ("random", "official")


def _order_key(sample: str) -> tuple[int, int | str]:
    """Numeric ids sort as numbers (the pickle's integer keys), anything else after, as text."""
    return (0, int(sample)) if sample.isdigit() else (1, sample)


def amst_split(ids: list[str], fractions, seed: int) -> dict[str, list[str]]:
    """gen_urfunny_txt.py's split: sort, shuffle with a seeded generator, cut with int()."""
    order = sorted(ids, key=_order_key)
    random.Random(seed).shuffle(order)
    n_train, n_val = int(len(order) * fractions[0]), int(len(order) * fractions[1])
    return {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }


@register_dataset("urfunny")
class URFunny(FileDataset):
    description = "UR-FUNNY v2: audio + visual + text, humour or not (ur_funny_all_text_label.txt)"
    modalities = ("audio", "text", "visual")
    default_skip = {"audio": 6, "text": 10, "visual": 1}
    layout_help = f"expected {SAMPLE_FILE}, WAV/<id>.wav and IMAGE_KEPT_1_PER_SEC/<id>/ frames"
    text_max_length = 128

    @property
    def split_kind(self) -> str:
        kind = self.source.options.get(
            "split", "official" if "split_dir" in self.source.options else "random"
        )
        if kind not in SPLIT_CHOICES:
            raise UserError(f"--set urfunny.split: expected one of {', '.join(SPLIT_CHOICES)}, got {kind!r}")
        return kind

    @property
    def split_seed(self) -> int:
        try:
            return int(self.source.options.get("split_seed", 0))
        except ValueError:
            raise UserError("--set urfunny.split_seed: expected an integer") from None

    def split_name(self) -> str:
        return {"random": "random-80/10/10", "official": "official-amst"}[self.split_kind]

    def find_records(self, root: Path, problems: list[str]) -> list[Record]:
        sample_file = root / SAMPLE_FILE
        lines = read_lines(sample_file, problems)
        if lines is None:
            return []
        self.texts: dict[str, str] = {}
        records = []
        for number, line in lines:
            where = f"{sample_file}:{number}"
            meta, sep, text = line.partition("###")
            fields = [f.strip() for f in meta.split(",")]
            if not sep or len(fields) != 2 or not fields[0]:
                problems.append(f"{where}: expected '<id>, <label> ### <text>', got {line[:80]!r}")
                continue
            sample, label = fields
            if label not in LABELS:
                problems.append(f"{where}: unknown label {label!r} (expected 0 or 1)")
                continue
            if sample in self.texts:
                problems.append(f"{where}: repeated id {sample!r}")
                continue
            self.texts[sample] = text.strip()
            sources = {
                "audio": root / "WAV" / f"{sample}.wav",
                "visual": root / "IMAGE_KEPT_1_PER_SEC" / sample,
                "text": sample_file,
            }
            records.append(Record(sample, LABELS[label], sources))
        return records

    def text_of(self, record: Record) -> str:
        return self.texts[record.id]

    def make_splits(
        self, records: list[Record], protocol: Protocol, problems: list[str]
    ) -> dict[str, list[str]]:
        labels = {r.id: r.label for r in records}
        if self.split_kind == "official":
            return self.split_files(OFFICIAL_FILES, self._read_split, labels, problems)
        folder = self.source.cache_dir / self.name / "splits" / f"random-seed{self.split_seed}"
        if all((folder / f"{s}.txt").is_file() for s in SPLITS):
            splits = {s: [i for i, _ in self._read_split(folder / f"{s}.txt", problems)] for s in SPLITS}
        else:
            splits = amst_split(list(labels), protocol.split, self.split_seed)
            if not problems:
                write_split_files(folder, splits, labels)
        unknown = sorted({i for s in SPLITS for i in splits[s]} - set(labels))
        if unknown:
            problems.append(
                f"{folder}: split files name {len(unknown)} id(s) not in {SAMPLE_FILE}, "
                f"e.g. {unknown[0]} (delete the folder to draw a new split)"
            )
        return splits

    @staticmethod
    def _read_split(path: Path, problems: list[str]) -> list[tuple[str, str]]:
        """(id, label) from a split file: ours (`<id> <LABEL>`) or theirs (`<id>, <LABEL>, ### text`)."""
        pairs = []
        for number, line in read_lines(path, problems) or []:
            meta = line.partition("###")[0]
            fields = [f for f in meta.replace(",", " ").split() if f]
            if len(fields) < 2 or fields[1] not in LABELS.values():
                problems.append(
                    f"{path}:{number}: expected '<id>, FUNNY|NOTFUNNY, ### <text>', got {line[:80]!r}"
                )
                continue
            pairs.append((fields[0], fields[1]))
        return pairs
