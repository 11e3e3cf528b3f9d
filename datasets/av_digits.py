"""AV-Digits: spoken digits (FSDD) paired with handwritten digits (scikit-learn); audio + visual,
10 classes (the digits 0–9). A small, clean audio-visual task anyone can get in a minute.

Where each part comes from:
  audio   the Free Spoken Digit Dataset (Z. Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset,
          CC BY-SA 4.0): 6 speakers × 10 digits × 50 takes = 3,000 WAV files, 8 kHz mono 16-bit,
          trimmed of silence (0.14–2.28 s, median 0.42 s). Clone it and point the adapter at the
          checkout: `--datasets av-digits:PATH/free-spoken-digit-dataset`.
  visual  the 1,797 handwritten digits shipped inside scikit-learn (`sklearn.datasets.load_digits`:
          the test set of the UCI "Optical Recognition of Handwritten Digits", Alpaydin & Kaynak
          1998, 13 writers, CC BY 4.0; scikit-learn is BSD-3): 8×8 images of 0..16 ink counts,
          174–183 per digit. Nothing is downloaded; scikit-learn is a dependency.

Layout under the dataset folder (the FSDD checkout as cloned; nothing else is read):
  recordings/<digit>_<speaker>_<take>.wav   e.g. recordings/7_jackson_32.wav
The label is the file name's first field. A .wav whose name does not parse is a problem naming
it; other files are ignored. A recording that is not 8,000 Hz is refused, naming the file (FSDD
is 8 kHz throughout; resample such a file to 8 kHz mono or remove it): the fbank of another rate
covers other frequencies and would make a different input for the same spoken digit.

Audio: the same fbank as every dataset (amst_bench.data.preprocess, 128 mel bins, 10 ms shift),
but padded or cut to 128 frames (1.3 s), not the official 1,024 (10.24 s): FSDD clips are short,
so 1,024 frames would be about 96% zero padding (8× the cache and the audio encoder's compute for
nothing). 4 of the 3,000 clips are longer than 1.3 s and lose their tail.

Pairing (which image goes with which clip), drawn per split from the split seed:
  - the images of each digit are shuffled (seeded) and cut into disjoint train/val/test parts, in
    proportion to that digit's clips in each split (largest remainders; each split with clips gets
    at least one image), so no image is in two splits and every split reuses its images equally;
  - the split's clips of that digit are shuffled (seeded) and clip k takes the part's image
    k mod n: the split's own images are cycled, each used ⌊c/n⌋ or ⌈c/n⌉ times (about 1.7 with
    the full FSDD: 3,000 clips over 1,797 images). An image never leaves its split.
The image index (into load_digits()) of every clip is part of the cache key, written to
`pairing.txt` beside the split files (`<clip>.wav <image index>`), and summarised (seed, images
per split, uses per image, digest, file) as `pairing` in the dataset info of every result.
The 13 writers of the images are not recorded by scikit-learn, so a writer may appear in two
splits (the images themselves never do); speakers are disjoint in the speaker split.

Frames: each clip's image becomes 3 uint8 RGB frames of 32×32 (ink dark on white, 255·(1 − v/16),
upscaled 4× with bilinear interpolation), so the visual encoder gets the input type of the video
datasets through the same frame cache (pad_frames, one 32×32 canvas) and the same device
transforms (training RandomResizedCrop(224) + horizontal flip, evaluation Resize((224, 224)),
amst_bench.data.augment; kept for comparability, though a crop of 8% of the area can cut most of
a digit and a flip mirrors it, which makes the visual side harder). Frame 0 is the image as is;
frames 1 and 2 are small seeded perturbations of it, as a hand-held shot would wobble: a rotation
uniform in ±10° and a shift of −2..2 px on each axis (of 32; white fill), seeded by the split seed
and the clip name. Cache: 126 MB for the whole FSDD (fbank 98 MB, frames 28 MB), 7 s to prepare.

Splits (`--set av-digits.split=…`, `--set av-digits.split_seed=N`; the seed also draws the pairing
and the frame perturbations), written once to split files (`7_jackson_32.wav 7`) under
<cache dir>/av-digits/splits/ and reused:
  speaker  (default) whole speakers in val and test, so no voice is in two splits: with 6 speakers
           4/1/1 (val and test each round(fraction × speakers), at least 1; train the rest),
           drawn by the seed; labelled `speaker-4/1/1` (counts of speakers) plus `-seedN`.
  random   seeded 80/10/10 over clips (the protocol's fractions): speakers are shared, an easier
           task; labelled `random-80/10/10`.
A digit with no clips in a split is a problem (that split could not score it): with the whole
FSDD every speaker says every digit, so this arises only with a partial copy. (FSDD's own
suggestion, takes 0–4 as test, keeps every speaker in both: not offered, the speaker split is
the harder and more honest one.)

Measured on the real FSDD (smoke profile: tiny encoders, CPU, one thread; naive, seed 0, speaker
split): 70 s per epoch, test accuracy 58.0% after 12 epochs and still rising: a smoke check of
the pipeline, not a result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from amst_bench.atomic import atomic_write_text
from amst_bench.data.adapter import Progress
from amst_bench.data.files import FileDataset, Record, Scan, TextSetup
from amst_bench.data.preprocess import AudioSettings, DecodeError, fbank, read_waveform
from amst_bench.data.splits import SPLITS, seeded_split_name, stored_seeded_split
from amst_bench.data.tensors import DatasetBundle
from amst_bench.options import option
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset

SAMPLE_RATE = 8000  # FSDD's rate; any other is refused
TARGET_FRAMES = 128  # 1.3 s of 10 ms frames: the longest FSDD clip is 2.28 s, 4 of 3,000 exceed this
CLIP_NAME = re.compile(r"(\d)_([^_]+)_(\d+)")
SPLIT_CHOICES = ("speaker", "random")


@dataclass(frozen=True)
class FrameSettings:
    """How an 8×8 digit becomes frames; part of the cache key."""

    frames: int = 3
    side: int = 32  # upscaled from 8×8, bilinear
    max_rotation: float = 10.0  # degrees, frames 1.. only
    max_shift: int = 2  # pixels of `side`, frames 1.. only


FRAMES = FrameSettings()


@dataclass(frozen=True)
class DigitRecord(Record):
    """A clip and the handwritten image paired with it (-1 until the split is drawn)."""

    speaker: str = ""
    image: int = -1


@dataclass(frozen=True)
class Digits:
    """scikit-learn's handwritten digits: [n, 8, 8] ink counts 0..16 and the digit of each."""

    images: Any  # numpy array
    targets: tuple[int, ...]


@lru_cache(maxsize=1)
def load_digit_images() -> Digits:
    """Loaded once per process (scikit-learn is imported only here)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Digits(bunch.images, tuple(int(t) for t in bunch.target))


def digits_file() -> Path:
    """The file load_digits reads; it stands for the visual source of every clip, so its size and
    mtime enter the cache key like any data file."""
    import importlib.resources

    return Path(str(importlib.resources.files("sklearn.datasets.data") / "digits.csv.gz"))


def speaker_counts(speakers: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Speakers in train, val and test: val and test round(fraction × speakers), at least 1."""
    val = max(1, round(fractions[1] * speakers))
    test = max(1, round(fractions[2] * speakers))
    return speakers - val - test, val, test


def allocate(count: int, weights: Mapping[str, int]) -> dict[str, int]:
    """`count` items shared in proportion to `weights` by largest remainders; every split with a
    positive weight gets at least one (taken from the largest share)."""
    total = sum(weights.values())
    exact = {s: count * w / total for s, w in weights.items()}
    shares = {s: int(x) for s, x in exact.items()}
    by_remainder = sorted(weights, key=lambda s: (shares[s] - exact[s], SPLITS.index(s)))
    for s in by_remainder[: count - sum(shares.values())]:
        shares[s] += 1
    for s, w in weights.items():
        if w > 0 and shares[s] == 0:
            largest = max(shares, key=lambda k: shares[k])
            shares[largest] -= 1
            shares[s] += 1
    return shares


def pair_images(
    splits: Mapping[str, Sequence[str]], digit_of: Mapping[str, int], targets: Sequence[int], seed: int
) -> dict[str, int]:
    """clip → image index: per digit, the images are shuffled and cut into disjoint parts per
    split (in proportion to the split's clips of that digit); a split's clips, shuffled, cycle
    through its own part. Deterministic for (splits, targets, seed)."""
    pairing: dict[str, int] = {}
    for digit in sorted(set(digit_of.values())):
        images = [i for i, t in enumerate(targets) if t == digit]
        random.Random(f"av-digits:{seed}:images:{digit}").shuffle(images)
        clips = {s: sorted(c for c in splits[s] if digit_of[c] == digit) for s in SPLITS}
        shares = allocate(len(images), {s: len(clips[s]) for s in SPLITS})
        start = 0
        for s in SPLITS:
            part = images[start : start + shares[s]]
            start += shares[s]
            random.Random(f"av-digits:{seed}:clips:{s}:{digit}").shuffle(clips[s])
            for k, clip in enumerate(clips[s]):
                pairing[clip] = part[k % len(part)]
    return pairing


def digit_frames(image: Any, seed: str, settings: FrameSettings = FRAMES) -> list[Any]:
    """The frames of one 8×8 digit (ink 0..16): [3, side, side] uint8 tensors, ink dark on white;
    frame 0 as is, the others rotated and shifted a little (seeded by `seed`)."""
    import numpy as np
    import torch
    from PIL import Image

    gray = np.round(255.0 * (1.0 - np.clip(image, 0, 16) / 16.0)).astype(np.uint8)
    big = Image.fromarray(gray, mode="L").resize((settings.side, settings.side), Image.BILINEAR)
    rng = random.Random(seed)
    frames = []
    for i in range(settings.frames):
        frame = big
        if i > 0:
            angle = rng.uniform(-settings.max_rotation, settings.max_rotation)
            shift = (rng.randint(-settings.max_shift, settings.max_shift),
                     rng.randint(-settings.max_shift, settings.max_shift))
            frame = big.rotate(angle, resample=Image.BILINEAR, translate=shift, fillcolor=255)
        rgb = np.asarray(frame.convert("RGB"), dtype=np.uint8).copy()
        frames.append(torch.from_numpy(rgb).permute(2, 0, 1))
    return frames


@register_dataset("av-digits")
class AVDigits(FileDataset):
    description = "AV-Digits: spoken (FSDD recordings/) + handwritten (scikit-learn) digits, 10 classes"
    modalities = ("audio", "visual")
    # No paper value exists for this dataset: AMST's skip is left off (1 = train every epoch)
    # until measured; set it with --set <method>.skip.audio=N.
    default_skip = {"audio": 1, "visual": 1}
    layout_help = (
        "expected recordings/<digit>_<speaker>_<take>.wav, a clone of "
        "github.com/Jakobovski/free-spoken-digit-dataset"
    )
    audio = AudioSettings(target_frames=TARGET_FRAMES)

    @dataclass(frozen=True)
    class Options:
        split: str = option("speaker", choices=SPLIT_CHOICES)
        split_seed: int = option(0, minimum=0)  # also draws the pairing and the frame perturbations

    # ------------------------------------------------------------------ files and splits

    def find_records(self, root: Path, problems: list[str]) -> list[Record]:
        folder = root / "recordings"
        if not folder.is_dir():
            problems.append(f"{folder}: missing folder ({self.layout_help})")
            return []
        try:
            visual = digits_file()
        except ModuleNotFoundError:
            problems.append("scikit-learn is not installed (pip install scikit-learn): it ships the images")
            return []
        records: list[Record] = []
        for wav in sorted(folder.iterdir()):
            if wav.suffix.lower() != ".wav" or not wav.is_file():
                continue
            match = CLIP_NAME.fullmatch(wav.stem)
            if match is None:
                problems.append(f"{wav}: name does not parse as <digit>_<speaker>_<take>.wav")
                continue
            digit, speaker, _ = match.groups()
            records.append(DigitRecord(wav.stem, digit, {"audio": wav, "visual": visual}, speaker=speaker))
        return records

    def speaker_layout(self, records: Sequence[Record], protocol: Protocol) -> tuple[int, int, int]:
        speakers = {r.id.split("_")[1] for r in records}
        return speaker_counts(len(speakers), protocol.split)

    def split_folder_of(self, records: Sequence[Record], protocol: Protocol) -> Path:
        """Where the split files (and pairing.txt) are kept; the speaker split's folder names its
        speaker counts, so a copy with more speakers draws a new split."""
        kind = self.options.split
        if kind == "speaker":
            kind += "-" + "-".join(map(str, self.speaker_layout(records, protocol)))
        return self.seeded_split_folder(protocol, kind, self.options.split_seed)

    def split_name(self, protocol: Protocol, records: Sequence[Record] = ()) -> str:
        seed = self.options.split_seed
        if self.options.split == "random":
            return seeded_split_name("random", protocol.split, seed)
        name = "speaker"
        if records:
            name += "-" + "/".join(map(str, self.speaker_layout(records, protocol)))
        return name if seed == 0 else f"{name}-seed{seed}"

    def make_splits(
        self, records: list[Record], protocol: Protocol, problems: list[str]
    ) -> dict[str, list[str]]:
        labels = {r.id: r.label for r in records}
        seed = self.options.split_seed
        if self.options.split == "random":
            splits = self.seeded_split(labels, protocol, problems, "random", seed, None, ".wav")
        else:
            train, val, test = self.speaker_layout(records, protocol)
            speakers = train + val + test
            if train < 1:
                problems.append(
                    f"{self.root / 'recordings'}: {speakers} speaker(s); the speaker split needs at "
                    f"least 3 (one each for train, val and test); use --set {self.name}.split=random"
                )
                return {s: [] for s in SPLITS}
            folder = self.split_folder_of(records, protocol)
            fractions = (train / speakers, val / speakers, test / speakers)
            splits = stored_seeded_split(
                folder, labels, fractions, seed, problems, lambda clip: clip.split("_")[1], ".wav"
            )
        digits = sorted(set(labels.values()))
        for s in SPLITS:
            present = {labels[c] for c in splits[s] if c in labels}
            for digit in digits:
                if splits[s] and digit not in present:
                    problems.append(
                        f"{self.name}: digit {digit} has no clips in the {s} split "
                        f"({self.split_name(protocol, records)}); that split could not score it"
                    )
        return splits

    # ------------------------------------------------------------------ pairing

    def scan(self, protocol: Protocol) -> Scan:
        """As every file dataset's, then each clip gets its image (once the split is sound)."""
        scan = super().scan(protocol)
        if scan.problems:
            # "no samples" and "empty split" add nothing when their cause is named (recordings/
            # missing, too few speakers): one line per cause
            shown = scan.problems
            if any(p.startswith(f"{self.root / 'recordings'}: ") for p in shown):
                empty = (f"{self.name}: the {s} split is empty" for s in SPLITS)
                echoes = (f"{self.root}: no samples found", *empty)
                shown = [p for p in shown if not p.startswith(echoes)]
            return dataclasses.replace(scan, problems=shown)
        digit_of = {r.id: int(r.label) for r in scan.records}
        pairing = pair_images(scan.splits, digit_of, load_digit_images().targets, self.options.split_seed)
        records = [dataclasses.replace(r, image=pairing[r.id]) for r in scan.records]
        return dataclasses.replace(scan, records=records)

    @staticmethod
    def pairing_lines(scan: Scan) -> str:
        """`<clip>.wav <image index>` per clip, in split order."""
        image = {r.id: r.image for r in scan.records}
        return "".join(f"{c}.wav {image[c]}\n" for s in SPLITS for c in scan.splits[s])

    def pairing_summary(self, scan: Scan, protocol: Protocol) -> dict[str, Any]:
        """What the dataset info records of the pairing; also writes pairing.txt beside the splits."""
        lines = self.pairing_lines(scan)
        image = {r.id: r.image for r in scan.records}
        uses: dict[str, dict[int, int]] = {s: {} for s in SPLITS}
        for s in SPLITS:
            for c in scan.splits[s]:
                uses[s][image[c]] = uses[s].get(image[c], 0) + 1
        path = self.split_folder_of(scan.records, protocol) / "pairing.txt"
        if not path.is_file() or path.read_text() != lines:
            atomic_write_text(path, lines)
        return {
            "rule": "per digit, disjoint image parts per split in proportion to its clips; clips cycle",
            "seed": self.options.split_seed,
            "images": {s: len(uses[s]) for s in SPLITS},
            "uses_per_image": {s: [min(u.values(), default=0), max(u.values(), default=0)]
                               for s, u in uses.items()},
            "digest": hashlib.sha256(lines.encode()).hexdigest()[:16],
            "file": str(path),
        }

    # ------------------------------------------------------------------ decoding and cache

    def decode(self, record: Record, modality: str, text: TextSetup | None = None) -> Any:
        if modality == "audio":
            path = record.sources["audio"]
            waveform, rate = read_waveform(path)
            if rate != SAMPLE_RATE:
                raise DecodeError(
                    f"{path}: {rate} Hz; FSDD recordings are {SAMPLE_RATE} Hz (resample it to 8 kHz "
                    "mono or remove it)"
                )
            try:
                return fbank(waveform, rate, self.audio).half()
            except Exception as exc:  # e.g. a clip shorter than one window
                raise DecodeError(f"{path}: cannot compute fbank ({exc})") from None
        if modality == "visual":
            if not isinstance(record, DigitRecord) or record.image < 0:
                raise ValueError(f"{record.id}: no image paired (decode records of a scan)")
            digits = load_digit_images()
            seed = f"av-digits:{self.options.split_seed}:frames:{record.id}"
            return digit_frames(digits.images[record.image], seed)
        return super().decode(record, modality, text)

    def settings(self, text: TextSetup | None = None) -> dict[str, Any]:
        out = super().settings(text)
        out["audio"]["sample_rate"] = SAMPLE_RATE
        out["visual"] = {"source": "sklearn.datasets.load_digits", **dataclasses.asdict(FRAMES)}
        out["options"] = self.resolved_options()
        return out

    def cache_key(self, scan: Scan) -> str:
        """As every file dataset's, plus the image of every clip."""
        return self.cache.key(self.settings(scan.text), scan.splits, scan.records, self.pairing_lines(scan))

    def prepare(self, protocol: Protocol, progress: Progress | None = None) -> Path:
        path = super().prepare(protocol, progress)
        self.pairing_summary(self.scan(protocol), protocol)
        return path

    def load(self, protocol: Protocol, progress: Progress | None = None) -> DatasetBundle:
        bundle = super().load(protocol, progress)
        bundle.info["pairing"] = self.pairing_summary(self.scan(protocol), protocol)
        return bundle
