"""CREMA-D (Cao et al., 2014): 7,442 clips of 91 actors, 6 emotions; audio + visual.

Layout expected under the dataset folder (as the official AMST code's data guide prepares it,
`Doc/dataset/CREMAD.md`: WAV files as distributed, frames extracted at 1 fps from VideoFlash):
  AudioWAV/<clip>.wav                      e.g. AudioWAV/1001_DFA_ANG_XX.wav
  IMAGE_KEPT_1_PER_SEC/<clip>/<frame>.jpg  frames of the clip, in name order
The label is the clip name's third field (ANG, DIS, FEA, HAP, NEU, SAD → Anger, Disgust, Fear,
Happy, Neutral, Sad, the official stat file's names); a frame folder named like a clip
whose WAV is missing is a problem (a clip is found by its WAV). Obtain the data from
github.com/CheyneyComputerScience/CREMA-D; extract frames as the AMST script
`video_preprocessing.py VideoFlash IMAGE_KEPT_1_PER_SEC 1 .flv` does (OpenCV: frame n when
n mod int(fps) = 0), or exactly so with ffmpeg, FPS = int(the clip's frame rate):
`ffmpeg -i VideoFlash/<clip>.flv -vf "select='not(mod(n,FPS))'" -fps_mode vfr -q:v 2
IMAGE_KEPT_1_PER_SEC/<clip>/%05d.jpg` (`-vf fps=1` samples by time: on these 2–3 s clips it can
give another frame count, hence other picks; README, Datasets).

Splits (`--set cremad.split=…`): `random` (default: seeded 80/10/10 over clips, written once to
split files and reused), `speaker` (seeded 80/10/10 over actors, so no actor is in two splits: a
random clip split puts the same actor in train and test), `official` (the split files of the
official code, `--set cremad.split_dir=DIR` holding 80_train_cre.txt, 10_val_cre.txt and
10_test_cre.txt, lines like `1086_ITS_SAD_XX.flv Sad`; accepted as given, with a warning for ids
in two splits: the official files have 4 clips in both val and test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from amst_bench.data.files import FileDataset, Record
from amst_bench.data.splits import read_split_file, seeded_split_name
from amst_bench.options import option
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset

EMOTIONS = {"ANG": "Anger", "DIS": "Disgust", "FEA": "Fear", "HAP": "Happy", "NEU": "Neutral", "SAD": "Sad"}
OFFICIAL_FILES = {"train": "80_train_cre.txt", "val": "10_val_cre.txt", "test": "10_test_cre.txt"}
SPLIT_CHOICES = ("random", "speaker", "official")


def _read_official(path: Path, problems: list[str]) -> list[tuple[str, str]]:
    """Lines `1086_ITS_SAD_XX.flv Sad` of the official split files, ids without '.flv'."""
    return read_split_file(path, suffix=".flv", problems=problems)


@register_dataset("cremad")
class CremaD(FileDataset):
    description = "CREMA-D: audio + visual, 6 emotions (AudioWAV/, IMAGE_KEPT_1_PER_SEC/)"
    modalities = ("audio", "visual")
    default_skip = {"audio": 5, "visual": 1}
    layout_help = "expected AudioWAV/<clip>.wav and IMAGE_KEPT_1_PER_SEC/<clip>/ frames"

    @dataclass(frozen=True)
    class Options:
        split: str = option("random", choices=SPLIT_CHOICES)
        split_seed: int = option(0, minimum=0)
        split_dir: str = ""  # the official split files (implies split=official)

    def split_name(self, protocol: Protocol, records: Sequence[Record] = ()) -> str:
        if self.options.split == "official":
            return "official-amst"
        return seeded_split_name(self.options.split, protocol.split, self.options.split_seed)

    def find_records(self, root: Path, problems: list[str]) -> list[Record]:
        audio_dir, frames_dir = root / "AudioWAV", root / "IMAGE_KEPT_1_PER_SEC"
        for folder in (audio_dir, frames_dir):
            if not folder.is_dir():
                problems.append(f"{folder}: missing folder ({self.layout_help})")
        if problems:
            return []
        records = []
        for wav in sorted(audio_dir.glob("*.wav")):
            clip = wav.stem
            fields = clip.split("_")
            if len(fields) < 3 or fields[2] not in EMOTIONS:
                problems.append(
                    f"{wav}: unknown label in clip name (expected ACTOR_SENTENCE_EMOTION_LEVEL "
                    f"with EMOTION in {', '.join(EMOTIONS)})"
                )
                continue
            records.append(Record(clip, EMOTIONS[fields[2]], {"audio": wav, "visual": frames_dir / clip}))
        # A clip is found by its WAV: frames of a clip whose WAV is gone would drop it unseen.
        for folder in sorted(frames_dir.iterdir()):
            fields = folder.name.split("_")
            if folder.is_dir() and len(fields) >= 3 and fields[2] in EMOTIONS:
                wav = audio_dir / f"{folder.name}.wav"
                if not wav.is_file():
                    problems.append(f"{wav}: missing (audio of {folder.name}, whose frames are in {folder})")
        return records

    def make_splits(
        self, records: list[Record], protocol: Protocol, problems: list[str]
    ) -> dict[str, list[str]]:
        labels = {r.id: r.label for r in records}
        if self.options.split == "official":
            return self.split_files(OFFICIAL_FILES, _read_official, labels, problems)
        actor = (lambda clip: clip.split("_")[0]) if self.options.split == "speaker" else None
        options = self.options
        return self.seeded_split(labels, protocol, problems, options.split, options.split_seed, actor, ".flv")
