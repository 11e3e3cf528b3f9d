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
    f="MP4/$utt.mp4"; out="IMAGE_KEPT_2_PER_SEC/$utt/%05d.jpg"
    r=$(ffprobe -v error -select_streams v:0 -show_entries stream=r_frame_rate -of csv=p=0 "$f")
    fps=$(echo "$r" | awk -F/ '{print int($1/($2?$2:1))}'); i=$((fps / 2))
    sel="select='lt(mod(n,$fps),2*$i)*not(mod(mod(n,$fps),$i))'"
    ffmpeg -nostdin -loglevel error -i "$f" -vf "$sel" -fps_mode vfr -q:v 2 "$out"
  done < iemocap_all_sample.txt
(the cut is what extract_video_clips.py runs, `ffmpeg -ss START -to END -i <dialog>.avi
<utterance>.mp4`; the WAV is mp4_to_wav.py's 16-bit PCM at the file's own rate; the frames are
exactly those the AMST frame script keeps with K = 2, OpenCV: frame n when n mod FPS is 0 or
int(FPS/2), FPS = int(fps), there named by frame number; `-vf fps=2` samples by time and gives
other frames, and on short clips another count: README, Datasets).
Audio and frames are decoded as for every dataset (amst_bench.data.preprocess): [1024, 128] fbank, and
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from amst_bench.data.files import Record
from amst_bench.data.splits import SPLITS, is_number
from amst_bench.datasets.samplefile import SampleFileDataset, SampleLine, SampleRecord
from amst_bench.errors import UserError
from amst_bench.options import option
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset

SAMPLE_FILE = "iemocap_all_sample.txt"
AUDIO_DIR = "WAV"
FRAMES_DIR = "IMAGE_KEPT_2_PER_SEC"
CLASSES = ("ang", "exc", "fru", "neu", "sad")  # code/data/IEMOCAP/stat_iemocap.txt
DROPPED = ("dis", "fea", "hap", "oth", "sur", "xxx")  # left out by split_iemo_dataset.py
OFFICIAL_FILES = {"train": "iemocap_train.txt", "val": "iemocap_valid.txt", "test": "iemocap_test.txt"}
SPLIT_CHOICES = ("random", "session", "official")
LINE_FORMAT = "<utterance>, <code>, <start>, <end> ### <transcript>"
UTTERANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SESSION = re.compile(r"Ses(\d\d)")


def parse_line(number: int, line: str, full: bool = True) -> SampleLine | str:
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
    return SampleLine(number, utterance, code, text.strip() if hashes else None, line)


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
class IEMOCAP(SampleFileDataset):
    description = (
        "IEMOCAP: audio + visual + text, 5 emotions (iemocap_all_sample.txt, WAV/, IMAGE_KEPT_2_PER_SEC/)"
    )
    modalities = ("audio", "text", "visual")
    default_skip = {"audio": 4, "text": 10, "visual": 1}
    layout_help = (
        f"expected {SAMPLE_FILE} (AMST format: {LINE_FORMAT}), {AUDIO_DIR}/<utterance>.wav and "
        f"{FRAMES_DIR}/<utterance>/ frames"
    )
    sample_file = SAMPLE_FILE
    audio_dir = AUDIO_DIR
    frames_dir = FRAMES_DIR
    classes = CLASSES
    official_files = OFFICIAL_FILES
    noun = "utterance"

    @dataclass(frozen=True)
    class Options(SampleFileDataset.Options):
        split: str = option("random", choices=SPLIT_CHOICES)
        test_session: int = option(5, minimum=1)  # split=session: the test session
        val_session: int = option(4, minimum=1)  # split=session: the validation session
        # text_max_length 128: code/data/IEMOCAP/extract_text_tokens.py

    def resolve_options(self, raw: dict[str, str]) -> SampleFileDataset.Options:
        options = super().resolve_options(raw)
        if options.test_session == options.val_session:
            raise UserError(
                f"--set iemocap.test_session and val_session: both are session {options.test_session}"
            )
        return options

    def parse(self, number: int, raw: str, full: bool = True) -> SampleLine | str:
        return parse_line(number, raw, full)

    def keep(self, line: SampleLine, where: str, problems: list[str]) -> bool:
        """The five classes of the AMST split script; its dropped codes are left out silently."""
        if line.label in DROPPED:
            return False
        if line.label not in CLASSES:
            problems.append(
                f"{where}: unknown emotion code {line.label!r} for {line.sample}; "
                f"expected one of {', '.join(CLASSES)} (kept) or {', '.join(DROPPED)} (left out)"
            )
            return False
        return True

    def absent(self, sample: str, sample_path: Path, parsed: dict[str, SampleLine]) -> str:
        code = parsed[sample].label if sample in parsed else None
        if code in DROPPED:
            return f": {sample_path} labels it {code!r}, not one of {', '.join(CLASSES)}"
        if code is not None:
            return f": its line in {sample_path} has a problem"
        return f": it is not in {sample_path}"

    def draw_split(self, records: list[SampleRecord], fractions: Sequence[float]) -> dict[str, list[str]]:
        entries = [(r.id, r.label) for r in records]  # sample-file order
        return stratified_split(entries, fractions, self.options.split_seed)

    def split_name(self, protocol: Protocol, records: Sequence[Record] = ()) -> str:
        if self.options.split == "session":
            return f"session-val{self.options.val_session}-test{self.options.test_session}"
        return super().split_name(protocol, records)

    def other_split(self, records: list[SampleRecord], problems: list[str]) -> dict[str, list[str]]:
        """split=session: one session for validation, one for test, the other three for training."""
        out: dict[str, list[str]] = {s: [] for s in SPLITS}
        line_of = {r.id: r.line.number for r in records if r.line is not None}
        for utterance in sorted(line_of):
            match = SESSION.match(utterance)
            if not match:
                problems.append(
                    f"{self.root / SAMPLE_FILE}:{line_of[utterance]}: utterance id "
                    f"{utterance} does not start with SesNN; the session split needs it"
                )
                continue
            session = int(match.group(1))
            split = {self.options.test_session: "test", self.options.val_session: "val"}.get(session, "train")
            out[split].append(utterance)
        for split, session, flag in (
            ("test", self.options.test_session, "test_session"),
            ("val", self.options.val_session, "val_session"),
        ):
            if not out[split] and records:
                problems.append(
                    f"{self.root / SAMPLE_FILE}: no utterance of session {session} "
                    f"(--set iemocap.{flag}), so the {split} split is empty"
                )
        return out
