"""Audio fbank, frame sampling and frame caching (aspect ratio kept, short side capped) as the
official AMST code prepares its inputs."""

from __future__ import annotations

import numpy as np
import soundfile
import torch
from PIL import Image
from torchaudio.compliance import kaldi

from amst_bench.data.augment import prepare_inputs, random_resized_boxes
from amst_bench.data.preprocess import (
    AudioSettings,
    VisualSettings,
    audio_features,
    frame_indices,
    pad_frames,
    visual_frames,
)
from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.protocol import get_profile
from tests.fixtures import make_cremad, write_frames, write_jpeg, write_wav


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
    assert [tuple(f.shape) for f in frames] == [(3, 30, 40)] * 3 and frames[0].dtype == torch.uint8
    expected = [visual_frames(folder / f"{i:05d}.jpg")[0] for i in (1, 3, 5)]
    for got, want in zip(frames, expected, strict=True):
        assert torch.equal(got, want)


def test_frames_keep_their_aspect_ratio_with_the_short_side_capped(tmp_path):
    for (width, height), cached in {
        (640, 360): (256, 455),  # 16:9 video frame: short side 360 → 256
        (480, 360): (256, 341),  # CREMA-D 4:3
        (360, 640): (455, 256),  # portrait
        (200, 100): (100, 200),  # already under the caps: untouched
        (2000, 500): (128, 512),  # 4:1 panorama: the long side cap wins
    }.items():
        path = tmp_path / f"{width}x{height}.jpg"
        write_jpeg(path, size=(width, height))
        (frame,) = visual_frames(path)
        assert tuple(frame.shape) == (3, *cached), (width, height)
        assert abs(cached[1] / cached[0] - width / height) < 0.01 * width / height
    (frame,) = visual_frames(tmp_path / "640x360.jpg", VisualSettings(short_side=128))
    assert tuple(frame.shape) == (3, 128, 228)


def test_the_cached_frame_is_a_bilinear_shrink_of_the_original(tmp_path):
    y, x = np.mgrid[0:360, 0:640]
    pixels = np.stack([x * 255 // 639, y * 255 // 359, (x + y) * 255 // 998], -1).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "f.png")
    (frame,) = visual_frames(tmp_path / "f.png")
    want = np.asarray(Image.fromarray(pixels).resize((455, 256), Image.BILINEAR))
    assert torch.equal(frame, torch.from_numpy(want.copy()).permute(2, 0, 1))


def test_pad_frames_puts_every_frame_in_one_canvas_and_keeps_true_sizes():
    a = torch.full((3, 4, 6), 7, dtype=torch.uint8)
    b = torch.full((3, 5, 2), 9, dtype=torch.uint8)
    padded, sizes = pad_frames([[a, a], [b, a]])
    assert [tuple(p.shape) for p in padded] == [(2, 3, 5, 6)] * 2
    assert sizes[0].tolist() == [[4, 6], [4, 6]] and sizes[1].tolist() == [[5, 2], [4, 6]]
    assert sizes[0].dtype == torch.int32
    assert torch.equal(padded[1][0, :, :5, :2], b) and padded[1][0, :, :, 2:].eq(0).all()
    assert torch.equal(padded[0][1, :, :4], a) and padded[0][1, :, 4:].eq(0).all()


def test_the_cap_enters_the_cache_key_and_the_cached_frames(tmp_path):
    make_cremad(tmp_path / "data", clips_per_class=2, frames=3)
    protocol = get_profile("smoke")

    def adapter():
        return make_adapter(f"cremad:{tmp_path / 'data'}", DataLocations(cache_dir=tmp_path / "cache"))

    default = adapter().prepare(protocol)
    capped = adapter()
    capped.visual = VisualSettings(short_side=20)
    path = capped.prepare(protocol)
    assert path != default and default.is_file() and path.is_file()
    stored = torch.load(path, weights_only=False)
    assert stored["meta"]["settings"]["visual"]["short_side"] == 20
    assert stored["inputs"]["visual"].shape[1:] == (3, 3, 20, 27)  # 40×30 frames → 27×20
    assert stored["inputs"]["visual_size"].shape[1:] == (3, 2)
    assert (stored["inputs"]["visual_size"] == torch.tensor([20, 27], dtype=torch.int32)).all()
    bundle = capped.load(protocol)
    assert bundle.input_shapes["visual"] == (3, 3, protocol.image_size, protocol.image_size)
    assert set(bundle.train.inputs) == {"audio", "visual", "visual_size"}


def test_random_resized_boxes_follow_torchvision_ranges():
    boxes = random_resized_boxes(torch.full((4000,), 224), torch.full((4000,), 224))
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
