"""Video: PyAV round trip of a clip made in the test, fitting it through the ``video``
command, frames at fractional times, and bad input (not a video, zero frames).
"""

import csv
import json

import numpy as np
import pytest
import torch

from neural_sdf.apps.presets import QUALITIES, video_preset
from neural_sdf.cli import main
from neural_sdf.config import VideoConfig
from neural_sdf.fields.video import frame_times, video_coords
from neural_sdf.io.video import load_video, save_video

FRAMES, H, W = 8, 16, 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _moving_blob() -> np.ndarray:
    """``(8, 16, 16, 3)`` smooth clip: a coloured Gaussian blob moving left to right on a ramp."""
    t = np.arange(FRAMES)[:, None, None]
    r = np.arange(H)[None, :, None]
    c = np.arange(W)[None, None, :]
    blob = np.exp(-((r - 7.5) ** 2 + (c - 3 - t) ** 2) / 8.0)
    frames = np.stack([0.2 + 0.6 * blob, 0.3 + 0.4 * (c / (W - 1)) + 0 * t * r, 0.7 - 0.5 * blob], axis=-1)
    return np.clip(frames, 0, 1)


@pytest.fixture()
def clip_path(tmp_path):
    return save_video(_moving_blob(), tmp_path / "blob.mp4", fps=8)


def test_video_round_trip(clip_path):
    clip = load_video(clip_path)
    assert clip.frames.shape == (FRAMES, H, W, 3)
    assert clip.fps == pytest.approx(8.0)
    # H.264 at crf 12 with 4:2:0 chroma (colour at half resolution): measured mean error 0.017,
    # max 0.16 (at the blob's coloured edge) on this clip.
    err = np.abs(clip.frames - _moving_blob())
    assert err.mean() < 0.03 and err.max() < 0.25
    short = load_video(clip_path, max_frames=3, max_side=8)
    assert short.frames.shape == (3, 8, 8, 3)


def test_video_coords_and_fractional_times():
    idx = torch.arange(2 * 3 * 4)
    c = video_coords(idx, (2, 3, 4))
    torch.testing.assert_close(c[0], torch.tensor([-1.0, -1.0, -1.0]))
    torch.testing.assert_close(c[-1], torch.tensor([1.0, 1.0, 1.0]))
    torch.testing.assert_close(c[4], torch.tensor([-1.0, 0.0, -1.0]))  # row 1 of frame 0
    np.testing.assert_allclose(frame_times([0, 3.5, 7], 8), [-1.0, 0.0, 1.0])
    # w0_time: the time coordinate is scaled by w0_time / w0_first before the first layer.
    torch.testing.assert_close(video_coords(idx, (2, 3, 4), time_scale=0.25)[-1], torch.tensor([0.25, 1.0, 1.0]))


def test_video_command_fits_and_writes_outputs(clip_path, tmp_path):
    out = tmp_path / "out"
    code = main(["video", str(clip_path), "-o", str(out), "--steps", "150", "--hidden-dim", "64", "--batch-size", "2048",
                 "--eval-every", "50", "--num-interpolated", "2", "--lr", "1e-3", "--device", "cpu", "--quiet"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # Measured (seed 0, the default preset's w0 60 / 6 along time, 15 warm-up steps): mean PSNR
    # 43.2 dB on this smooth 8-frame clip after 150 steps (41.4 dB with 15 along time, 45.5 dB with
    # w0 30 along time too).
    assert metrics["psnr"] > 39.0
    rows = list(csv.reader((out / "psnr_per_frame.csv").open()))
    assert rows[0] == ["frame", "psnr_db"] and len(rows) == FRAMES + 1
    back = load_video(out / "reconstruction.mp4")
    assert back.frames.shape == (FRAMES, H, W, 3)
    interp = sorted(p.name for p in (out / "frames").iterdir())
    assert interp == ["frame_0000.5.png", "frame_0006.5.png"]
    for name in ["psnr_per_frame.png", "psnr.png", "psnr.csv", "interpolation.png"]:
        assert (out / name).stat().st_size > 0


def test_quality_presets_resolve_as_documented():
    steps = [video_preset(q).train.steps for q in QUALITIES[:3]]
    assert steps == [1000, 3000, 8000]
    default = video_preset("default")
    assert default.config == VideoConfig()  # the config's defaults are the default preset's
    assert (default.config.frames, default.config.max_side, default.config.batch_size, default.config.w0_time) == (25, 256, 8192, 6.0)
    assert (default.siren.hidden_dim, default.siren.num_hidden_layers, default.siren.w0_first) == (256, 3, 60.0)
    assert (default.train.lr, default.train.warmup_steps) == (5e-4, 100)
    # paper: the SIREN reference code's train_video.py.
    paper = video_preset("paper")
    assert (paper.siren.hidden_dim, paper.siren.w0_first, paper.train.lr, paper.train.steps) == (1024, 30.0, 1e-4, 100_000)
    assert (paper.config.frames, paper.config.max_side, paper.config.w0_time) == (0, 0, 0.0)


def _empty_video(path):
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        container.start_encoding()  # write the header of a clip that never gets a frame
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("definitely not a video"), "not a readable video"),
        (_empty_video, "zero frames"),
    ],
)
def test_video_command_bad_input(tmp_path, capsys, make, message):
    src = tmp_path / "clip.mp4"
    make(src)
    out = tmp_path / "out"
    code = main(["video", str(src), "-o", str(out), "--steps", "5", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("name", ["seq.gif", "seq.mp4", "seq_pngs"])
def test_save_animation_formats(tmp_path, name):
    # The one writer of picture sequences (the viewer's --export-interp, interpolate --render).
    import imageio.v3 as iio

    from neural_sdf.io import save_animation

    if name.endswith(".mp4"):
        pytest.importorskip("av", reason="MP4 export needs PyAV (the 'video' extra)")
    rng = np.random.default_rng(0)
    # Odd sizes: MP4 pads them to even ones (H.264, see save_video), GIF and PNG keep them.
    frames = [np.full((51, 65, 3), 40 * k, np.uint8) + rng.integers(0, 5, (51, 65, 3), dtype=np.uint8) for k in range(4)]
    path = save_animation(frames, tmp_path / name, fps=10)
    if name.endswith(".gif"):
        assert iio.imread(path, index=None).shape[:3] == (4, 51, 65)
    elif name.endswith(".mp4"):
        video = iio.imread(path, index=None, plugin="pyav")
        assert video.shape[:3] == (4, 52, 66)
        # Lossy, but each frame keeps its grey level.
        np.testing.assert_allclose(video.reshape(4, -1).mean(axis=1), [40 * k + 2 for k in range(4)], atol=4)
    else:
        assert sorted(p.name for p in path.iterdir()) == [f"frame_{k:03d}.png" for k in range(4)]


def test_save_animation_rejects_other_extensions(tmp_path):
    from neural_sdf.errors import InputError
    from neural_sdf.io import save_animation

    with pytest.raises(InputError, match=".gif, .mp4 or a folder"):
        save_animation([np.zeros((8, 8, 3), np.uint8)], tmp_path / "seq.txt")
