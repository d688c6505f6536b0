"""`rlsuite record --out` (.mp4, .gif or a directory) and `rlsuite sweep --videos` (the median episode per trial)."""

from __future__ import annotations

from pathlib import Path

from test_cli import assert_user_error, rlsuite
from typer.testing import CliRunner
from videoprobe import probe

from rlsuite.cli import app
from rlsuite.evaluation.records import EpisodeRecord

BASELINE = ("--agent", "random", "--env", "CartPole-v1")


def test_record_refuses_other_extensions_and_lists_the_accepted(tmp_path):
    for name in ("x.avi", "x.mkv", "x"):
        result = rlsuite("record", *BASELINE, "--out", str(tmp_path / name), cwd=tmp_path)
        assert_user_error(result, ".mp4 or .gif", f"{tmp_path / 'x'}.mp4")
    assert list(tmp_path.iterdir()) == []


def test_record_into_a_directory_and_as_gif(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    result = rlsuite("record", *BASELINE, "--out", str(videos), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    mp4 = videos / "random-CartPole-v1.mp4"
    assert result.stdout.strip().splitlines()[-1] == str(mp4)
    stream = probe(mp4)
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")

    gif = tmp_path / "random.gif"
    result = rlsuite("record", *BASELINE, "--out", str(gif), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert gif.read_bytes()[:4] == b"GIF8" and probe(gif)["codec_name"] == "gif"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random.gif", "videos"]  # no MP4 or scratch left

    assert_user_error(rlsuite("record", *BASELINE, "--out", str(gif), "--gif", str(tmp_path / "y.gif"), cwd=tmp_path),
                      "--out is a GIF already")


def _median(records: list[EpisodeRecord]) -> EpisodeRecord:
    """By hand: sort by return, take the lower middle one (ties by episode index)."""
    ranked = sorted(records, key=lambda r: (r.episode_return, r.index))
    return ranked[(len(ranked) - 1) // 2]


def test_sweep_videos_record_the_median_episode_of_each_trial(tmp_path):
    from test_sweep import grid

    from rlsuite.sweep import plan_trials, run_trial

    trial = plan_trials(grid(tmp_path, agents=("random",), seeds=(0,), videos=True))[0]
    result = run_trial(trial)
    assert result.status == "finished"
    video = Path(result.evaluation.video_path)
    median = _median(list(result.episodes))
    assert video.name.endswith(f"-seed{median.seed}.mp4")
    assert probe(video)["nb_read_frames"] == median.length + 1  # the reset frame and one per step

    quiet = plan_trials(grid(tmp_path / "quiet", agents=("random",), seeds=(0,)))[0]  # videos off by default
    assert run_trial(quiet).evaluation.video_path is None
    assert not list((tmp_path / "quiet").rglob("*.mp4"))


def test_sweep_help_says_when_it_records():
    text = " ".join(CliRunner().invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "median-return evaluation episode" in text and "default: no videos" in text
    assert "(train, evaluate, record)" not in text
