"""Audio fbank and frame sampling as the official AMST code prepares them."""

from __future__ import annotations

import soundfile
import torch
from torchaudio.compliance import kaldi

from amst_bench.data.augment import prepare_inputs, random_resized_boxes
from amst_bench.data.preprocess import AudioSettings, audio_features, frame_indices, visual_frames
from tests.fixtures import write_frames, write_wav


def test_fbank_matches_a_direct_kaldi_call_with_the_documented_parameters(tmp_path):
    path = tmp_path / "clip.wav"
    write_wav(path, seconds=1.3, rate=22050)
    features = audio_features(path)
    data, rate = soundfile.read(path, dtype="float32")
    wave = torch.from_numpy(data).unsqueeze(0)
    direct = kaldi.fbank(wave - wave.mean(), htk_compat=True, sample_frequency=rate, use_energy=False,
                         window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
    assert features.shape == (1024, 128)
    torch.testing.assert_close(features[: direct.shape[0]], direct)
    assert torch.count_nonzero(features[direct.shape[0]:]) == 0  # zero-padded to 1024 frames


def test_long_audio_is_cut_to_target_frames(tmp_path):
    path = tmp_path / "long.wav"
    write_wav(path, seconds=1.0, rate=8000)
    assert audio_features(path, AudioSettings(target_frames=50)).shape == (50, 128)


def test_frame_sampler_picks_the_official_indices():
    assert frame_indices(7, 3) == [0, 2, 4]
    assert frame_indices(9, 3) == [0, 3, 6]
    assert frame_indices(3, 3) == [0, 1, 2]
    assert frame_indices(2, 3) == [0, 0, 0]  # fewer frames than picked: the first, three times


def test_frames_are_taken_in_name_order(tmp_path):
    folder = tmp_path / "clip"
    write_frames(folder, 7)
    frames = visual_frames(folder)
    assert frames.shape == (3, 3, 224, 224) and frames.dtype == torch.uint8
    expected = [visual_frames(folder / f"{i:05d}.jpg")[0] for i in (1, 3, 5)]
    for got, want in zip(frames, expected, strict=True):
        assert torch.equal(got, want)


def test_random_resized_boxes_follow_torchvision_ranges():
    boxes = random_resized_boxes(4000, 224, 224, torch.device("cpu"))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    area = w * h / 224**2
    assert area.min() >= 0.07 and area.max() <= 1.0
    assert (w / h).min() >= 0.74 and (w / h).max() <= 1.35
    assert boxes.min() >= 0 and boxes.max() <= 224


def test_prepare_inputs_normalises_and_only_augments_in_training():
    frames = torch.full((2, 3, 3, 8, 8), 255, dtype=torch.uint8)
    evaluation = prepare_inputs({"visual": frames}, train=False)["visual"]
    torch.testing.assert_close(evaluation[0, 0, 0, 0, 0], torch.tensor((1 - 0.485) / 0.229))
    torch.manual_seed(0)
    varied = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8)
    assert not torch.equal(prepare_inputs({"visual": varied}, True)["visual"],
                           prepare_inputs({"visual": varied}, False)["visual"])
    audio = prepare_inputs({"audio": torch.zeros(2, 16, 8, dtype=torch.float16)}, False)["audio"]
    assert audio.shape == (2, 1, 16, 8) and audio.dtype == torch.float32
