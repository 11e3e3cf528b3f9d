"""IEMOCAP (Busso et al., 2008): dyadic sessions of 10 actors (5 sessions of 2), ~12 h; the AMST
paper uses 5 emotions and three modalities (audio, visual, text): 6,785 utterances.

Obtain the data from sail.usc.edu/iemocap (IEMOCAP_full_release, by request). The AMST repository
(github.com/CXianRen/AMST, `Doc/dataset/IEMOCAP.md`, `code/data/IEMOCAP/`) prepares it in steps:
`gen_iemo_dataset.py` lists every evaluated dialog turn of the 5 sessions with its label, times and
transcript in `iemocap_all_sample.txt` (10,039 lines; the file is in that folder); each turn is cut
from its dialog's DivX video (`extract_video_clips.py`), its audio track is written as WAV
(`data/scripts/mp4_to_wav.py`) and frames are kept at 2 per second (`video_preprocessing.py MP4
IMAGE_KEPT_2_PER_SEC 2 .mp4`). Layout expected under the dataset folder:
  iemocap_all_sample.txt                   the AMST sample file, as given: one line per utterance
                                           `<utterance>, <code>, <start s>, <end s> ### <transcript>`
                                           e.g. `Ses05F_impro07_F013, exc, 60.2400, 64.5700 ### I know ...`
  WAV/<utterance>.wav                      the utterance's audio (the clip's audio track)
  IMAGE_KEPT_2_PER_SEC/<utterance>/*.jpg   the clip's frames, 2 per second, taken in name order
The transcript is read from the sample file (the text after `###`, stripped), as the official
`extract_text_tokens.py` does; it is tokenised with the RoBERTa tokenizer of `--text-model`, padded
or cut to 128 tokens (that script's max_length; `--set iemocap.text_max_length=N`). Only utterances
of the 5 classes need files. From IEMOCAP_full_release and the sample file, e.g.:
  mkdir -p MP4 WAV IMAGE_KEPT_2_PER_SEC
  while IFS=', ' read -r utt code start end _; do
    case $code in ang|exc|fru|neu|sad) ;; *) continue;; esac
    avi=IEMOCAP_full_release/Session${utt:4:1}/dialog/avi/DivX/${utt%_*}.avi
    ffmpeg -nostdin -loglevel error -ss "$start" -to "$end" -i "$avi" "MP4/$utt.mp4"
    ffmpeg -nostdin -loglevel error -i "MP4/$utt.mp4" -map 0:a:0 -vn -c:a pcm_s16le "WAV/$utt.wav"
    mkdir -p "IMAGE_KEPT_2_PER_SEC/$utt"
    ffmpeg -nostdin -loglevel error -i "MP4/$utt.mp4" -vf fps=2 -q:v 2 "IMAGE_KEPT_2_PER_SEC/$utt/%05d.jpg"
  done < iemocap_all_sample.txt
(the cut is what extract_video_clips.py runs, `ffmpeg -ss START -to END -i <dialog>.avi
<utterance>.mp4`; the WAV is mp4_to_wav.py's 16-bit PCM at the file's own rate; the AMST frame
script, OpenCV, 2 frames in each second named by frame number, gives an equally usable folder).
Audio and frames are decoded as for every dataset (amst_bench.preprocess): [1024, 128] fbank, and
3 frames at index int(n / 3) * i of the sorted folder, as the official loader (`IEMOCAP3`,
`TVADataset`, pick_num 3) takes them from its 2-per-second folder.

Labels. The code is the sample file's second field. Kept, as `split_iemo_dataset.py` keeps them,
are ang, exc, fru, neu, sad (angry, excited, frustrated, neutral, sad: 1,103 / 1,041 / 1,849 /
1,708 / 1,084); the class names are these codes, sorted, exactly the official stat file
`stat_iemocap.txt`. The other IEMOCAP codes are left out, as there: hap (595; NOT merged into exc,
unlike many IEMOCAP papers), sur, fea, oth, dis and xxx (no agreement). Any other code is a
problem naming the file and line, and so is a malformed line, a line without `###`, or an
utterance listed twice.

Splits (`--set iemocap.split=…`):
  random    (default) the official algorithm of split_iemo_dataset.py: per class, in sample-file
            order, a seeded shuffle (Python `random`, one generator over the classes in sorted
            order), then int(0.8 n) train, int(0.1 n) test, the rest validation. With seed 0
            (`--set iemocap.split_seed=N`) and the AMST sample file this IS the official split
            (iemocap_train/valid/test.txt, 5,426 / 683 / 676 utterances, checked in the tests).
            Drawn once, written to <cache>/iemocap/splits/random-seed<N>/ as iemocap_train.txt,
            iemocap_valid.txt and iemocap_test.txt in the official format, and reused (such a folder
            can also be given as split_dir). Another `protocol.split` fraction gets its own folder.
  session   session-disjoint: the session is the `SesNN` prefix of the utterance id. With 5 sessions
            an 80/10/10 split by sessions cannot be drawn, so one session is the test split
            (`--set iemocap.test_session=N`, default 5), one the validation split
            (`iemocap.val_session`, default 4) and the other three train: 3,859 / 1,447 / 1,479
            (57/21/22 %). A random split puts both speakers of every session, and turns of the same
            dialog, in train and test.
  official  the AMST split files as given, `--set iemocap.split_dir=DIR` holding iemocap_train.txt,
            iemocap_valid.txt and iemocap_test.txt (lines in the sample-file format; the utterance
            id and code are read; `<utterance>, <code>` suffices); split_dir alone implies it. Each
            utterance must be in the sample file with the same code; ids in two splits are accepted
            with a warning (none in the AMST files); the order of the files is kept.

Deviations from the official code: frames are taken in name order (the official loader uses the
unsorted `os.listdir` order); audio is de-meaned on its first channel before the fbank (the official
script de-means over all channels, then kaldi.fbank reads channel 0; the same for mono files); a
bad or missing file is reported, never replaced by a constant array.
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from amst_bench.errors import UserError
from amst_bench.filedata import DataSource, FileDataset, Record, seeded_split_name
from amst_bench.preprocess import DecodeError
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset
from amst_bench.results import atomic_write_text
from amst_bench.splits import SPLITS, is_number, overlaps, read_lines

SAMPLE_FILE = "iemocap_all_sample.txt"
AUDIO_DIR = "WAV"
FRAMES_DIR = "IMAGE_KEPT_2_PER_SEC"
CLASSES = ("ang", "exc", "fru", "neu", "sad")  # code/data/IEMOCAP/stat_iemocap.txt
DROPPED = ("dis", "fea", "hap", "oth", "sur", "xxx")  # left out by split_iemo_dataset.py
OFFICIAL_FILES = {"train": "iemocap_train.txt", "val": "iemocap_valid.txt", "test": "iemocap_test.txt"}
SPLIT_CHOICES = ("random", "session", "official")
OPTIONS = ("split", "split_dir", "split_seed", "test_session", "val_session", "text_max_length")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
LINE_FORMAT = "<utterance>, <code>, <start>, <end> ### <transcript>"
UTTERANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SESSION = re.compile(r"Ses(\d\d)")


@dataclass(frozen=True)
class Line:
    """One parsed line of the sample file (or of a split file)."""

    number: int
    utterance: str
    code: str
    text: str | None  # the transcript after '###'; None when the line has none
    raw: str  # the line, stripped


def _shown(line: str, limit: int = 100) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "…")


def parse_line(number: int, line: str, full: bool = True) -> Line | str:
    """A line `<utterance>, <code>, <start>, <end> ### <transcript>`, or the error in it. With
    `full` False (split files) only `<utterance>, <code>` is required, as the official loader reads."""
    meta, hashes, text = line.partition("###")
    fields = [f.strip() for f in meta.split(",")]
    if full and len(fields) != 4:
        return f"expected 4 comma-separated fields before '###' ({LINE_FORMAT}), found {len(fields)}"
    if len(fields) < 2:
        return f"expected at least '<utterance>, <code>' ({LINE_FORMAT})"
    utterance, code = fields[0], fields[1]
    if not UTTERANCE.fullmatch(utterance):
        return f"utterance id {utterance!r} is not a file name"
    if not code:
        return "empty emotion code"
    if full and not (is_number(fields[2]) and is_number(fields[3])):
        return "start and end times must be numbers"
    if full and not hashes:
        return f"no transcript ('### <transcript>' missing; {LINE_FORMAT})"
    return Line(number, utterance, code, text.strip() if hashes else None, line)


def stratified_split(
    entries: Sequence[tuple[str, str]], fractions: Sequence[float], seed: int
) -> dict[str, list[str]]:
    """The split of the official `split_iemo_dataset.py`: per class (sorted), the utterances in the
    given (sample-file) order are shuffled by one seeded generator, then int(train·n) go to train,
    int(test·n) to test and the rest to validation. Ids come back sorted."""
    rng = random.Random(seed)
    by_class: dict[str, list[str]] = {}
    for utterance, label in entries:
        by_class.setdefault(label, []).append(utterance)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for label in sorted(by_class):
        members = list(by_class[label])
        rng.shuffle(members)
        n_train, n_test = int(len(members) * fractions[0]), int(len(members) * fractions[2])
        out["train"] += members[:n_train]
        out["test"] += members[n_train : n_train + n_test]
        out["val"] += members[n_train + n_test :]
    return {s: sorted(ids) for s, ids in out.items()}


@register_dataset("iemocap")
class IEMOCAP(FileDataset):
    description = (
        "IEMOCAP: audio + visual + text, 5 emotions (iemocap_all_sample.txt, WAV/, IMAGE_KEPT_2_PER_SEC/)"
    )
    modalities = ("audio", "text", "visual")
    default_skip = {"audio": 4, "text": 10, "visual": 1}
    layout_help = (
        f"expected {SAMPLE_FILE} (AMST format: {LINE_FORMAT}), {AUDIO_DIR}/<utterance>.wav and "
        f"{FRAMES_DIR}/<utterance>/ frames"
    )
    known_options = OPTIONS
    text_max_length = 128  # code/data/IEMOCAP/extract_text_tokens.py

    def __init__(self, source: DataSource | None = None):
        super().__init__(source)
        self.split_kind = self.split_choice(SPLIT_CHOICES)
        self.split_seed = self.int_option("split_seed", 0)
        self.test_session = self.int_option("test_session", 5, low=1)
        self.val_session = self.int_option("val_session", 4, low=1)
        if self.test_session == self.val_session:
            raise UserError(
                f"--set iemocap.test_session and val_session: both are session {self.test_session}"
            )
        self.text_max_length = self.int_option("text_max_length", self.text_max_length, low=2)
        self._fractions: tuple[float, ...] = DEFAULT_FRACTIONS
        self._lines: dict[str, Line] = {}  # kept utterances of the sample file, in file order
        self._codes: dict[str, str] = {}  # every utterance of the sample file → its code

    # ------------------------------------------------------------------ records

    def find_records(self, root: Path, problems: list[str]) -> list[Record]:
        self._lines, self._codes = {}, {}
        folders_missing = False
        for folder in (root / AUDIO_DIR, root / FRAMES_DIR):
            if not folder.is_dir():
                problems.append(f"{folder}: missing folder ({self.layout_help})")
                folders_missing = True
        sample_path = root / SAMPLE_FILE
        lines = read_lines(sample_path, problems)
        if lines is None:
            return []
        first_seen: dict[str, int] = {}
        for number, raw in lines:
            line = parse_line(number, raw)
            if isinstance(line, str):
                problems.append(f"{sample_path}:{number}: malformed line, {line}: {_shown(raw)}")
                continue
            if line.utterance in first_seen:
                problems.append(
                    f"{sample_path}:{number}: utterance {line.utterance} is listed again "
                    f"(first at line {first_seen[line.utterance]})"
                )
                continue
            first_seen[line.utterance] = number
            self._codes[line.utterance] = line.code
            if line.code in DROPPED:
                continue
            if line.code not in CLASSES:
                problems.append(
                    f"{sample_path}:{number}: unknown emotion code {line.code!r} for {line.utterance}; "
                    f"expected one of {', '.join(CLASSES)} (kept) or {', '.join(DROPPED)} (left out)"
                )
                continue
            self._lines[line.utterance] = line
        if folders_missing:
            return []
        return [
            Record(
                u,
                line.code,
                {
                    "audio": root / AUDIO_DIR / f"{u}.wav",
                    "text": sample_path,
                    "visual": root / FRAMES_DIR / u,
                },
            )
            for u, line in self._lines.items()
        ]

    def class_names(self, records: list[Record]) -> list[str]:
        return list(CLASSES)  # the official stat file's classes, sorted, present or not

    def text_of(self, record: Record) -> str:
        line = self._lines.get(record.id)
        if line is None or line.text is None:
            raise DecodeError(f"{record.sources['text']}: no transcript for {record.id}")
        return line.text

    # ------------------------------------------------------------------ splits

    def split_name(self) -> str:
        if self.split_kind == "official":
            return "official-amst"
        if self.split_kind == "session":
            return f"session-val{self.val_session}-test{self.test_session}"
        return seeded_split_name("random", self._fractions, self.split_seed)

    def make_splits(
        self, records: list[Record], protocol: Protocol, problems: list[str]
    ) -> dict[str, list[str]]:
        self._fractions = tuple(protocol.split)
        labels = {r.id: r.label for r in records}
        if self.split_kind == "official":
            folder = self.split_dir(OFFICIAL_FILES, problems)
            if folder is None:
                return {s: [] for s in SPLITS}
            return self._read_split_files(folder, labels, problems, warn_missing=False)
        if self.split_kind == "session":
            return self._session_split(labels, problems)
        return self._random_split(labels, problems)

    def _random_split(self, labels: dict[str, str], problems: list[str]) -> dict[str, list[str]]:
        name = f"random-seed{self.split_seed}"
        if self._fractions != DEFAULT_FRACTIONS:
            name = "random-" + "-".join(f"{f:g}" for f in self._fractions) + f"-seed{self.split_seed}"
        folder = self.source.cache_dir / self.name / "splits" / name
        if all((folder / f).is_file() for f in OFFICIAL_FILES.values()):
            return self._read_split_files(folder, labels, problems, warn_missing=True)
        entries = [(u, labels[u]) for u in self._lines if u in labels]  # sample-file order
        splits = stratified_split(entries, self._fractions, self.split_seed)
        if not problems:  # never store a split drawn from a dataset with problems
            for s, filename in OFFICIAL_FILES.items():
                atomic_write_text(folder / filename, "".join(f"{self._lines[u].raw}\n" for u in splits[s]))
        return splits

    def _session_split(self, labels: dict[str, str], problems: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {s: [] for s in SPLITS}
        for utterance in sorted(labels):
            match = SESSION.match(utterance)
            if not match:
                problems.append(
                    f"{self.root / SAMPLE_FILE}:{self._lines[utterance].number}: utterance id "
                    f"{utterance} does not start with SesNN; the session split needs it"
                )
                continue
            session = int(match.group(1))
            split = {self.test_session: "test", self.val_session: "val"}.get(session, "train")
            out[split].append(utterance)
        for split, session, option in (
            ("test", self.test_session, "test_session"),
            ("val", self.val_session, "val_session"),
        ):
            if not out[split] and labels:
                problems.append(
                    f"{self.root / SAMPLE_FILE}: no utterance of session {session} "
                    f"(--set iemocap.{option}), so the {split} split is empty"
                )
        return out

    def _read_split_files(
        self, folder: Path, labels: dict[str, str], problems: list[str], warn_missing: bool
    ) -> dict[str, list[str]]:
        """Utterance ids per split from files in the official format, checked against the sample
        file. `warn_missing`: the folder is a stored random split (say how to draw it anew)."""
        hint = f" (delete {folder} to draw a new split)" if warn_missing else ""
        sample_path = self.root / SAMPLE_FILE
        splits: dict[str, list[str]] = {}
        for split, filename in OFFICIAL_FILES.items():
            path = folder / filename
            splits[split] = []
            lines = read_lines(path, problems)
            if lines is None:
                continue
            seen: set[str] = set()
            for number, raw in lines:
                line = parse_line(number, raw, full=False)
                if isinstance(line, str):
                    problems.append(f"{path}:{number}: malformed line, {line}: {_shown(raw)}")
                    continue
                utterance, code = line.utterance, line.code
                if utterance not in labels:
                    if utterance in self._codes and self._codes[utterance] in DROPPED:
                        code_there = self._codes[utterance]
                        why = f"{sample_path} labels it {code_there!r}, not one of {', '.join(CLASSES)}"
                    elif utterance in self._codes:
                        why = f"its line in {sample_path} has a problem"
                    else:
                        why = f"it is not in {sample_path}"
                    problems.append(f"{path}:{number}: utterance {utterance}: {why}{hint}")
                    continue
                if code != labels[utterance]:
                    problems.append(
                        f"{path}:{number}: utterance {utterance} labelled {code!r}, "
                        f"{sample_path} says {labels[utterance]!r}{hint}"
                    )
                    continue
                if utterance in seen:
                    warnings.warn(f"{path}:{number}: {utterance} is listed again; ignored", stacklevel=2)
                    continue
                seen.add(utterance)
                splits[split].append(utterance)
        for (a, b), both in overlaps(splits).items():
            warnings.warn(
                f"iemocap {self.split_name()} split: {len(both)} utterance(s) in both {a} and {b} "
                f"(e.g. {sorted(both)[0]}); accepted as given",
                stacklevel=2,
            )
        if warn_missing:
            listed = {u for ids in splits.values() for u in ids}
            left = [u for u in labels if u not in listed]
            if left:
                warnings.warn(
                    f"iemocap: {len(left)} utterance(s) of {sample_path} are in no file of the stored "
                    f"split {folder} (e.g. {left[0]}); left out{hint}",
                    stacklevel=2,
                )
        return splits
