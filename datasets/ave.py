"""AVE, Audio-Visual Event (Tian et al., ECCV 2018): 4,143 ten-second YouTube videos, 28 event
categories; audio + visual. Split: the dataset's OFFICIAL train/val/test (3,339 / 402 / 402).

Obtain the data from github.com/YapengTian/AVE-ECCV18 (its README links AVE_Dataset.zip). The
zip holds AVE/<video id>.mp4, Annotations.txt, trainSet.txt, valSet.txt and testSet.txt. As the
official AMST code's data guide prepares it (`Doc/dataset/AVE.md`), extract the audio track to
WAV and keep 1 frame per second. Layout expected under the dataset folder:
  Annotations.txt                           every video: `Category&VideoID&Quality&StartTime&EndTime`
  trainSet.txt, valSet.txt, testSet.txt     the official split, same line format
  WAV/<video id>.wav                        the video's audio track, e.g. WAV/RUhOCu3LNXM.wav
  IMAGE_KEPT_1_PER_SEC/<video id>/*.jpg     1 frame per second of the video, in name order
  (AVE/<video id>.mp4, the videos themselves, are not read)
e.g., from the unzipped AVE_Dataset/ folder:
  mkdir -p WAV IMAGE_KEPT_1_PER_SEC
  for f in AVE/*.mp4; do id=$(basename "$f" .mp4); mkdir -p "IMAGE_KEPT_1_PER_SEC/$id"
    ffmpeg -nostdin -loglevel error -i "$f" -map 0:a:0 -vn -c:a pcm_s16le "WAV/$id.wav"
    r=$(ffprobe -v error -select_streams v:0 -show_entries stream=r_frame_rate -of csv=p=0 "$f")
    fps=$(echo "$r" | awk -F/ '{print int($1/($2?$2:1))}'); out="IMAGE_KEPT_1_PER_SEC/$id/%05d.jpg"
    ffmpeg -nostdin -loglevel error -i "$f" -vf "select='not(mod(n,$fps))'" -fps_mode vfr -q:v 2 "$out"
  done
The first ffmpeg call does what the AMST script `code/data/scripts/mp4_to_wav.py` runs (audio
track to 16-bit PCM WAV at the file's own rate); the second keeps exactly the frames of the AMST
frame script (`video_preprocessing.py AVE/ IMAGE_KEPT_1_PER_SEC/ 1 .mp4`, OpenCV: frame n when
n mod int(fps) = 0), numbered 00001.jpg, … instead of by frame number (only the order is used).
`-vf fps=1` samples by time: other frames, and on short clips another count (README, Datasets).

Labels are the Category field; the class names are the categories of Annotations.txt, sorted (the
28 names of the AMST stat file `code/data/AVE/stat_ave.txt`). Quality, StartTime and EndTime (the
event's seconds) are not used: like the AMST code, a sample is the whole video. Files are read as
UTF-8; blank lines are skipped, and so is a first line that is the header (the zip's
Annotations.txt starts with `Category&VideoID&Quality&StartTime&EndTime`; the copy in the GitHub
repository has no header), in any of the four files. A malformed line, a split-file line whose
video is not in Annotations.txt, or whose category is not one Annotations.txt gives that video, is
a problem naming the file and line. A line repeated within one file is ignored, with a warning; a
sample listed in two split files is kept in both, with a warning (none of these in the real files).

Samples. Annotations.txt has 4,143 lines but 4,097 videos: 44 videos are annotated with two
categories and one with three (e.g. Banjo and Mandolin, Male and Female speech), and the official
split counts every line (3,339 + 402 + 402 = 4,143). Each annotation line is a sample here, so
the split sizes equal the split files: its id is the video id, or `<video id>@<Category>` for a
video annotated more than once (those samples read the same files). 18 of these videos have
samples in two splits (e.g. one in train, one in test): accepted as given, with a warning. The
AMST loader keys labels by video id, so where a video's lines fall in one split it trains each
copy with the label of the last line; here each keeps its own.

`--set ave.split_dir=DIR`: read the split from the AMST repository's files instead
(`code/data/AVE/`: my_train_ave.txt, my_val_ave.txt, my_test_ave.txt, lines like
`RUhOCu3LNXM.mp4 Church bell`); split name `amst-files` (else `official`). These files are the
official split in the official order except one train video, VWi2ENBuTbw (Church bell, annotated
0–0 s): 3,338 / 402 / 402. Their lines are checked against Annotations.txt in the same way.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from amst_bench.data.files import FileDataset, Listing, Record, Scan
from amst_bench.data.splits import SPLITS, SplitEntry, is_number, read_split_entries, warn_overlaps
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset

ANNOTATIONS = "Annotations.txt"
OFFICIAL_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
AMST_FILES = {"train": "my_train_ave.txt", "val": "my_val_ave.txt", "test": "my_test_ave.txt"}
OFFICIAL_FORMAT = "Category&VideoID&Quality&StartTime&EndTime"
HEADER = tuple(OFFICIAL_FORMAT.lower().split("&"))
AMST_LINE = re.compile(r"(\S+)\.mp4\s+(\S.*)")



def _official_error(fields: list[str]) -> str | None:
    if len(fields) != 5:
        return f"expected 5 fields {OFFICIAL_FORMAT}, found {len(fields)}"
    category, video, _, start, end = fields
    if not category or not video:
        return "empty Category or VideoID"
    if re.search(r"[\s/\\]", video):
        return f"VideoID {video!r} is not a file name"
    if not (is_number(start) and is_number(end)):
        return "StartTime and EndTime must be numbers"
    return None


def _parse_official(index: int, line: str) -> tuple[str, str] | str | None:
    """(video id, category) of a line `Category&VideoID&Quality&StartTime&EndTime`; None for the
    header line, when it comes first."""
    fields = [f.strip() for f in line.split("&")]
    if index == 0 and tuple(f.lower() for f in fields) == HEADER:
        return None
    error = _official_error(fields)
    if error:
        return f"malformed line, {error}: {line!r}"
    return fields[1], fields[0]


def _parse_amst(index: int, line: str) -> tuple[str, str] | str:
    """(video id, category) of an AMST split-file line `<video id>.mp4 <Category>`."""
    match = AMST_LINE.fullmatch(line)
    if not match:
        return f"malformed line, expected '<video id>.mp4 <Category>': {line!r}"
    return match.group(1), match.group(2).strip()


def _shown(video: str, category: str) -> str:
    return f"{video} ({category})"


def read_official_file(path: Path, problems: list[str]) -> list[SplitEntry] | None:
    """Entries of a file in the official format (Annotations.txt, trainSet.txt, …): lines
    `Category&VideoID&Quality&StartTime&EndTime`, an optional header line first. A repeated line
    is ignored with a warning."""
    return read_split_entries(path, _parse_official, problems, repeated=_shown)


def read_amst_file(path: Path, problems: list[str]) -> list[SplitEntry] | None:
    """Entries of an AMST split file: lines `<video id>.mp4 <Category>`. A repeated line is
    ignored with a warning."""
    return read_split_entries(path, _parse_amst, problems, repeated=_shown)


@register_dataset("ave")
class AVE(FileDataset):
    description = "AVE: audio + visual, 28 events, official split (WAV/, IMAGE_KEPT_1_PER_SEC/)"
    modalities = ("audio", "visual")
    default_skip = {"audio": 2, "visual": 1}
    layout_help = (
        "expected Annotations.txt, trainSet.txt, valSet.txt, testSet.txt, WAV/<video id>.wav "
        "and IMAGE_KEPT_1_PER_SEC/<video id>/ frames"
    )

    @dataclass(frozen=True)
    class Options:
        split_dir: str = ""  # the AMST repository's split files instead of the official ones

    @property
    def split_dir(self) -> Path | None:
        value = self.options.split_dir
        return Path(value).expanduser() if value else None

    def split_name(self, protocol: Protocol, records: Sequence[Record] = ()) -> str:
        return "amst-files" if self.split_dir else "official"

    def cache_key(self, scan: Scan) -> str:
        # the class list comes from Annotations.txt, which may name a category no sample uses
        return self.cache.key(
            self.settings(scan.text), scan.splits, scan.records, extra="\n".join(scan.class_names)
        )

    def find_records(self, root: Path, problems: list[str]) -> list[Record]:
        return self.read_listing(root, problems).records

    def read_listing(self, root: Path, problems: list[str]) -> Listing:
        """The records, the split of the split files (a sample may stand in two, in file order)
        and the categories of Annotations.txt."""
        audio_dir, frames_dir = root / "WAV", root / "IMAGE_KEPT_1_PER_SEC"
        folders_missing = False
        for folder in (audio_dir, frames_dir):
            if not folder.is_dir():
                problems.append(f"{folder}: missing folder ({self.layout_help})")
                folders_missing = True
        annotations_path = root / ANNOTATIONS
        annotations = read_official_file(annotations_path, problems)
        if annotations is None:
            return Listing([])
        categories_of: dict[str, list[str]] = {}  # video id → its categories, in file order
        for entry in annotations:
            categories_of.setdefault(entry.id, []).append(entry.label)
        categories = sorted({c for cs in categories_of.values() for c in cs})

        def sample_id(video: str, category: str) -> str:
            return video if len(categories_of[video]) == 1 else f"{video}@{category}"

        records: dict[str, Record] = {}
        video_of: dict[str, str] = {}
        splits: dict[str, list[str]] = {s: [] for s in SPLITS}
        for split, path, entries in self._split_entries(root, problems):
            for entry in entries:
                n, video, category = entry.number, entry.id, entry.label
                if video not in categories_of:
                    problems.append(f"{path}:{n}: video {video} is not in {annotations_path}")
                    continue
                if category not in categories_of[video]:
                    problems.append(
                        f"{path}:{n}: video {video} labelled {category!r}, {annotations_path} says "
                        f"{' / '.join(repr(c) for c in categories_of[video])}"
                    )
                    continue
                sample = sample_id(video, category)
                video_of[sample] = video
                splits[split].append(sample)
                records.setdefault(
                    sample,
                    Record(
                        sample,
                        category,
                        {"audio": audio_dir / f"{video}.wav", "visual": frames_dir / video},
                        split,
                    ),
                )
        self._warn_shared_videos(categories_of, video_of, splits)
        # The split is fixed by the files: `protocol.split` does not apply.
        kept = [] if folders_missing else list(records.values())
        return Listing(kept, splits, sorted(set(categories) | {r.label for r in kept}))

    # ------------------------------------------------------------------ helpers

    def _split_entries(self, root: Path, problems: list[str]) -> list[tuple[str, Path, list[SplitEntry]]]:
        folder = self.split_dir
        if folder is None:
            files, folder, reader = OFFICIAL_FILES, root, read_official_file
        elif not folder.is_dir():
            problems.append(
                f"--set ave.split_dir={folder}: not a folder holding {', '.join(AMST_FILES.values())}"
            )
            return []
        else:
            files, reader = AMST_FILES, read_amst_file
        out = []
        for split, filename in files.items():
            entries = reader(folder / filename, problems)
            if entries is not None:
                out.append((split, folder / filename, entries))
        return out

    def _warn_shared_videos(
        self, categories_of: dict[str, list[str]], video_of: dict[str, str], splits: dict[str, list[str]]
    ) -> None:
        samples: dict[str, set[str]] = {}
        where: dict[str, set[str]] = {}
        for split, ids in splits.items():
            for sample in ids:
                samples.setdefault(video_of[sample], set()).add(sample)
                where.setdefault(video_of[sample], set()).add(split)
        shared = sorted(v for v, s in samples.items() if len(s) > 1)
        if shared:
            apart = [v for v in shared if len(where[v]) > 1]
            example = f"{shared[0]}: {' and '.join(repr(c) for c in categories_of[shared[0]])}"
            message = (
                f"ave: {len(shared)} video(s) are annotated with several categories (e.g. {example}); "
                "each annotation is a sample, with the same files"
            )
            if apart:
                message += f"; {len(apart)} of them stand in two splits (e.g. {apart[0]}): accepted as given"
            warnings.warn(message, stacklevel=3)
        split_name = "amst-files" if self.split_dir else "official"
        warn_overlaps(splits, f"ave {split_name} split", stacklevel=3)
