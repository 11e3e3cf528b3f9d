"""UR-FUNNY (Hasan et al., EMNLP 2019): humour detection in TED-talk segments, humorous (the
punchline is followed by laughter) or not; audio + visual + text, 2 classes. The paper describes
16,514 segments (8,257 + 8,257, version 1); the AMST code uses version 2 (noisy and overlapping
instances removed): 10,166 segments, 5,083 per class (`code/data/UR-FUNNY/ur_funny_info.txt`).

Obtain the data from github.com/ROC-HCI/UR-FUNNY (UR-FUNNY-V2: urfunny2_videos.zip, the raw videos
`<id>.mp4`, and the extracted-features folder holding language_sdk.pkl and humor_label_sdk.pkl).
The AMST repository (github.com/CXianRen/AMST, `Doc/dataset/UR-FUNNY.md`, `code/data/UR-FUNNY/`)
prepares it in steps: `gen_urfunny_txt.py` writes one line per segment to
`ur_funny_all_text_label.txt` (the file is in that folder) and draws its split; the videos' audio
tracks become WAV (`data/scripts/mp4_to_wav.py`), their frames are kept at 1 per second
(`video_preprocessing.py urfunny2_videos IMAGE_KEPT_1_PER_SEC 1 .mp4`), and the texts are tokenised
(`extract_text_tokens.py`). Layout expected under the dataset folder:
  ur_funny_all_text_label.txt        the AMST sample file, as given: `<id>, <0|1> ### <text>`,
                                     e.g. `1, 1 ### the cat likes this version better`
                                     (label 1 humorous, 0 not, as humor_label_sdk.pkl); lines in the
                                     format of their split files, `<id>, <FUNNY|NOTFUNNY>, ### <text>`,
                                     are read as well (so `cat ur_funny_train.txt ur_funny_valid.txt
                                     ur_funny_test.txt` also makes a sample file)
  WAV/<id>.wav                       the audio track of urfunny2_videos/<id>.mp4
  IMAGE_KEPT_1_PER_SEC/<id>/*.jpg    its frames, 1 per second, taken in name order
e.g. for each video:
  id=$(basename "$f" .mp4); mkdir -p WAV "IMAGE_KEPT_1_PER_SEC/$id"
  ffmpeg -nostdin -loglevel error -i "$f" -map 0:a:0 -vn -c:a pcm_s16le "WAV/$id.wav"
  r=$(ffprobe -v error -select_streams v:0 -show_entries stream=r_frame_rate -of csv=p=0 "$f")
  fps=$(echo "$r" | awk -F/ '{print int($1/($2?$2:1))}'); out="IMAGE_KEPT_1_PER_SEC/$id/%05d.jpg"
  ffmpeg -nostdin -loglevel error -i "$f" -vf "select='not(mod(n,$fps))'" -fps_mode vfr -q:v 2 "$out"
(mp4_to_wav.py also writes 16-bit PCM at the file's own rate; the frames are exactly those the AMST
frame script keeps, OpenCV: frame n when n mod int(fps) = 0, there named by frame number; `-vf
fps=1` samples by time and gives other frames, and on short clips another count: README, Datasets).

Text. gen_urfunny_txt.py takes the `punchline_sentence` of language_sdk.pkl only, no
`context_sentences` ("we use the punchline sentence for the text data, make thing easier"), so the
text of a segment is the text after `###` in the sample file (stripped), as extract_text_tokens.py
reads it; tokenised with the RoBERTa tokenizer of `--text-model`, padded or cut to 128 tokens (that
script's max_length; `--set urfunny.text_max_length=N`). Audio and frames come from the whole video,
decoded as for every dataset (amst_bench.data.preprocess): [1024, 128] fbank (the first 10.24 s), and 3
frames at index int(n / 3) * i of the sorted folder, as the official loader (`TVADataset`, pick_num
3, the same sampler as for CREMA-D) takes them; a clip with fewer than 3 frames gives its first
frame 3 times, as there.

Labels. Class names are FUNNY and NOTFUNNY, sorted, as the official stat file `ur_funny_stat.txt`
(NOTFUNNY, FUNNY) sorted by the loader; label 1 is FUNNY and 0 NOTFUNNY, as gen_urfunny_txt.py
names them in its split files. Any other label is a problem naming the file and line, and so is a
malformed line (no `###`, not exactly `<id>, <label>` before it), an empty text or an id listed
twice.

Splits (`--set urfunny.split=…`):
  random    (default) the split algorithm of gen_urfunny_txt.py: the ids sorted (numerically, as
            the pickle's integer keys), shuffled by random.Random(seed) (`--set
            urfunny.split_seed=N`, default 0 as their random.seed(0)), then int(0.8 n) train,
            int(0.1 n) validation, the rest test. With seed 0 and the AMST sample file this IS their
            split (ur_funny_train/valid/test.txt: 8,132 / 1,016 / 1,018, checked in the tests).
            Drawn once, written to <cache>/urfunny/splits/random-seed<N>/ as ur_funny_train.txt,
            ur_funny_valid.txt and ur_funny_test.txt in their format, and reused (such a folder can
            also be given as split_dir). Another `protocol.split` fraction gets its own folder.
  official  their split files as given, `--set urfunny.split_dir=DIR` holding ur_funny_train.txt,
            ur_funny_valid.txt and ur_funny_test.txt, lines `<id>, <FUNNY|NOTFUNNY>, ### <text>`
            (as their loader, only the id and label are read; their texts equal the sample file's);
            split_dir alone implies it. 80/10/10 by int() truncation, as above, no id in two files.
            Each id must be in the sample file with the same label; ids in two splits are accepted
            with a warning; the order of the files is kept.
UR-FUNNY segments come from 1,866 TED talk videos of many speakers, the non-humorous segments from
the same videos as the humorous ones, but neither the AMST files nor the segment ids carry a speaker
or talk id, so no speaker-disjoint split is offered (a random
split puts segments of the same talk in train and test; the release's own data_folds.pkl, its
train/dev/test folds, unused by AMST, could be added as another split).

Deviations from the official code: frames are taken in name order (their loader uses the unsorted
`os.listdir` order); audio is de-meaned on its first channel before the fbank (their script
de-means over all channels, then kaldi.fbank reads channel 0; the same for mono files); a bad or
missing file is reported, never replaced by a constant array; a malformed sample-file line is a
problem (extract_text_tokens.py skips lines without `###`, and a repeated id overwrites).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from amst_bench.datasets.samplefile import SampleFileDataset, SampleLine, SampleRecord
from amst_bench.registry import register_dataset

SAMPLE_FILE = "ur_funny_all_text_label.txt"
AUDIO_DIR = "WAV"
FRAMES_DIR = "IMAGE_KEPT_1_PER_SEC"
CLASSES = ("FUNNY", "NOTFUNNY")  # code/data/UR-FUNNY/ur_funny_stat.txt, sorted as the loader does
LABELS = {"0": "NOTFUNNY", "1": "FUNNY", "NOTFUNNY": "NOTFUNNY", "FUNNY": "FUNNY"}
OFFICIAL_FILES = {"train": "ur_funny_train.txt", "val": "ur_funny_valid.txt", "test": "ur_funny_test.txt"}
LINE_FORMAT = "<id>, <0|1> ### <text>"
SAMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_line(number: int, line: str, full: bool = True) -> SampleLine | str:
    """A line `<id>, <label> ### <text>` (label 0/1 or FUNNY/NOTFUNNY; `<id>, <label>, ### <text>`,
    the split files' form, too), or the error in it. With `full` False (split files) the text may be
    missing, as the official loader reads only the first two comma-separated fields."""
    meta, hashes, text = line.partition("###")
    if full and not hashes:
        return f"no '###' before the text ({LINE_FORMAT})"
    fields = [f.strip() for f in meta.split(",")]
    if hashes and len(fields) == 3 and not fields[2]:
        fields = fields[:2]  # `<id>, <LABEL>, ### <text>`
    if len(fields) < 2 or (full and len(fields) > 2):
        return f"expected '<id>, <label>' before '###' ({LINE_FORMAT}), found {len(fields)} field(s)"
    sample, label = fields[0], fields[1]
    if not SAMPLE_ID.fullmatch(sample):
        return f"segment id {sample!r} is not a file name"
    if label not in LABELS:
        return f"unknown label {label!r}; expected 0 or 1 (or NOTFUNNY / FUNNY)"
    if full and not text.strip():
        return "empty text after '###'"
    return SampleLine(number, sample, LABELS[label], text.strip() if hashes else None, line)


def _order_key(sample: str) -> tuple[int, int | str]:
    """Numeric ids sort as numbers (the pickle's integer keys), anything else after, as text."""
    return (0, int(sample)) if sample.isdigit() else (1, sample)


def amst_split(ids: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
    """The split of gen_urfunny_txt.py: ids sorted, shuffled by a seeded generator, then
    int(train·n) train, int(val·n) validation, the rest test; in the shuffled order."""
    order = sorted(ids, key=_order_key)
    random.Random(seed).shuffle(order)
    n_train, n_val = int(len(order) * fractions[0]), int(len(order) * fractions[1])
    return {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }


@register_dataset("urfunny")
class URFunny(SampleFileDataset):
    description = (
        "UR-FUNNY v2: audio + visual + text, humour or not "
        "(ur_funny_all_text_label.txt, WAV/, IMAGE_KEPT_1_PER_SEC/)"
    )
    modalities = ("audio", "text", "visual")
    default_skip = {"audio": 6, "text": 10, "visual": 1}
    layout_help = (
        f"expected {SAMPLE_FILE} (AMST format: {LINE_FORMAT}), {AUDIO_DIR}/<id>.wav and "
        f"{FRAMES_DIR}/<id>/ frames"
    )
    sample_file = SAMPLE_FILE
    audio_dir = AUDIO_DIR
    frames_dir = FRAMES_DIR
    classes = CLASSES
    official_files = OFFICIAL_FILES
    noun = "segment"

    def parse(self, number: int, raw: str, full: bool = True) -> SampleLine | str:
        return parse_line(number, raw, full)

    def draw_split(self, records: list[SampleRecord], fractions: Sequence[float]) -> dict[str, list[str]]:
        return amst_split([r.id for r in records], fractions, self.options.split_seed)

    def split_file_line(self, line: SampleLine) -> str:
        return f"{line.sample}, {line.label}, ### {line.text}"  # gen_urfunny_txt.py's split-file line

    def order_key(self, sample: str):
        return _order_key(sample)

    def show_label(self, label: str) -> str:
        return label
