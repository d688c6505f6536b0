"""Reports: numbers equal the statistics recomputed from the raw episodes, nothing leaves the disk.

One fixture database holds ppo (3 seeds, one re-evaluated) and a random baseline on CartPole-v1 and
Acrobot-v1, a failed run, run folders with metrics.csv learning curves, and one real H.264 MP4. The
browser test opens the finished report in headless Chromium and checks that figures decode, the video
plays and every request stays on the local file system.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from rlsuite.evaluation import stats
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
from rlsuite.evaluation.report import ReportError, format_interval, format_number, mean_curve, write_report
from rlsuite.evaluation.store import ResultsStore
from rlsuite.evaluation.video import ffmpeg_exe, write_mp4

REPS = 300
SEED = 7
NOW = datetime(2025, 1, 31, 12, 0, 0, tzinfo=timezone.utc)
EVAL_SEEDS = tuple(range(1_000_000, 1_000_010))
VERSIONS = {"rlsuite": "0.1.0", "torch": "2.13.0", "gymnasium": "1.4.0"}
FAILED_COMMAND = "rlsuite train --agent ppo --env CartPole-v1 --seed 3 --total-steps 20480"
ACROBOT_REFERENCE = -100.0


def _returns(rng: np.random.Generator, centre: float, spread: float, n: int, lo: float, hi: float) -> np.ndarray:
    return np.round(np.clip(rng.normal(centre, spread, n), lo, hi), 1)


def _episodes(returns: np.ndarray, seeds: tuple[int, ...], with_metrics: bool) -> list[EpisodeRecord]:
    return [
        EpisodeRecord(
            index=i,
            seed=s,
            episode_return=float(r),
            length=int(abs(r)) + 1,
            metrics={"success": float(r >= 400.0)} if with_metrics else {},
        )
        for i, (s, r) in enumerate(zip(seeds, returns, strict=True))
    ]


def _write_run_folder(run_dir: Path, agent: str, env_id: str, seed: int, start: float, final: float) -> None:
    """A run folder as agents/run.py and agents/logger.py leave it: manifest.json and metrics.csv."""
    run_dir.mkdir(parents=True)
    manifest = {
        "schema_version": 1, "name": run_dir.name, "agent": agent, "env_id": env_id, "seed": seed,
        "settings": {"total_steps": 20480}, "command": f"rlsuite train --agent {agent} --env {env_id} --seed {seed}",
        "versions": VERSIONS, "git_commit": "0123456789abcdef", "status": "finished", "error": None,
    }  # fmt: skip
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with (run_dir / "metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "wall_time", "key", "value"])
        for k in range(11):
            step = 2048 * k + 16 * seed  # seeds evaluate at slightly different steps: curves interpolate
            writer.writerow([step, 0.5 * k, "charts/episodic_return", 1.0])
            progress = 1.0 - 0.8 ** k  # learning that slows down, ending near `final`
            writer.writerow([step, 0.5 * k, "eval/mean_return", start + (final - start) * progress / 0.9 + seed])


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The database plus the raw numbers it holds, kept independently of the store for the oracles."""
    root = tmp_path_factory.mktemp("report_fixture")
    rng = np.random.default_rng(1)
    db = root / "results.db"
    truth: dict = {"db": db, "root": root, "returns": {}}
    with ResultsStore(db) as store:
        for env_id, centre, random_centre, lo, hi in (
            ("CartPole-v1", 300.0, 22.0, 8.0, 500.0),
            ("Acrobot-v1", -110.0, -480.0, -500.0, 0.0),
        ):
            for seed in range(3):
                run_id = f"ppo_{env_id}_s{seed}"
                run_dir = root / "runs" / run_id
                if not (env_id == "Acrobot-v1" and seed == 2):  # that run's folder was deleted
                    _write_run_folder(run_dir, "ppo", env_id, seed, random_centre, centre + 40 * seed)
                store.record_run(
                    RunRecord(
                        run_id=run_id, agent="ppo", env_id=env_id, seed=seed, status="finished",
                        run_dir=str(run_dir), command=f"rlsuite train --agent ppo --env {env_id} --seed {seed}",
                        versions=VERSIONS, git_commit="0123456789abcdef",
                    )
                )  # fmt: skip
                evaluation = EvaluationRecord(
                    run_id=run_id, agent="ppo", env_id=env_id, checkpoint="best", checkpoint_step=20480,
                    deterministic=True, seeds=EVAL_SEEDS, protocol={"max_episode_steps": 500},
                )  # fmt: skip
                if seed == 0:  # an older evaluation that the report must ignore (latest wins)
                    store.record_evaluation(evaluation, _episodes(np.full(10, lo), EVAL_SEEDS, env_id == "CartPole-v1"))
                returns = _returns(rng, centre + 40 * seed, 40.0, 10, lo, hi)
                eval_id = store.record_evaluation(evaluation, _episodes(returns, EVAL_SEEDS, env_id == "CartPole-v1"))
                truth["returns"][(env_id, "ppo", seed)] = returns
                if env_id == "CartPole-v1" and seed == 1:
                    video = root / "videos" / "ppo_cartpole_s1.mp4"
                    video.parent.mkdir()
                    frames = []
                    for t in range(30):  # a white square crossing a dark background
                        frame = np.full((64, 96, 3), 30, dtype=np.uint8)
                        frame[20:40, 2 * t : 2 * t + 20] = 255
                        frames.append(frame)
                    write_mp4(frames, video, fps=15)
                    store.set_video(eval_id, str(video))
                    truth["video"] = video
            run_id = f"baseline:random:{env_id}"
            store.record_run(RunRecord(run_id=run_id, agent="random", env_id=env_id, seed=None, status="baseline"))
            seeds = tuple(range(1_000_000, 1_000_020))
            returns = _returns(rng, random_centre, 8.0, 20, lo, hi)
            store.record_evaluation(
                EvaluationRecord(
                    run_id=run_id, agent="random", env_id=env_id, checkpoint="none", checkpoint_step=None,
                    deterministic=True, seeds=seeds, protocol={"max_episode_steps": 500},
                ),
                _episodes(returns, seeds, env_id == "CartPole-v1"),
            )  # fmt: skip
            truth["returns"][(env_id, "random", None)] = returns
        store.record_run(
            RunRecord(
                run_id="ppo_CartPole-v1_s3", agent="ppo", env_id="CartPole-v1", seed=3, status="failed",
                run_dir=str(root / "runs" / "ppo_CartPole-v1_s3"), command=FAILED_COMMAND,
                error="RuntimeError: loss became NaN at step 4096", versions=VERSIONS,
            )
        )  # fmt: skip
    truth["out"] = root / "report"
    truth["html"] = write_report(db, truth["out"], envs=["CartPole-v1"], reps=REPS, seed=SEED, now=NOW)
    return truth


def _section(md: str, heading: str) -> str:
    """The Markdown between `heading` and the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = md.index(heading + "\n")
    rest = md[start + len(heading) + 1 :]
    stop = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.M)
    return rest[: stop.start()] if stop else rest


def _row(table: str, agent: str) -> list[str]:
    """Cells of the table row whose first cell names `agent`."""
    for line in table.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if cells[0].replace("*", "").split(" ")[0] == agent:
                return cells
    raise AssertionError(f"no row for {agent} in:\n{table}")


def _run_scores(truth: dict, env_id: str) -> np.ndarray:
    return np.array([[truth["returns"][(env_id, "ppo", s)].mean()] for s in range(3)])  # (3 runs, 1 task)


def test_report_files_exist_and_per_env_table_marks_the_best_agent(fixture_db: dict) -> None:
    out = fixture_db["out"]
    assert fixture_db["html"] == out / "report.html" and fixture_db["html"].is_file()
    md = (out / "report.md").read_text()
    for png in ("scores_CartPole-v1.png", "curves_CartPole-v1.png"):
        assert (out / "figures" / png).read_bytes().startswith(b"\x89PNG")
    assert (out / "report.html").stat().st_mode & 0o777 == 0o644  # shareable, not the temp file's 0600
    assert not (out / "figures" / "aggregates.png").exists()  # one env: no across-env section
    assert "## Across envs" not in md
    table = _section(md, "### CartPole-v1")
    ppo, random = _row(table, "ppo"), _row(table, "random")
    assert ppo[0] == "**ppo** \u2605 best" and "\u2605" not in random[0]
    assert ppo[1] == "3" and random[1] == "1\u2020"  # random: one run, CIs over its episodes (footnote)
    assert "\u2020 A single run (random: 20 episodes)" in table
    # Episode length and the env metric `success`: means over runs of per-run episode means.
    runs = [fixture_db["returns"][("CartPole-v1", "ppo", s)] for s in range(3)]
    lengths = np.mean([np.mean(np.trunc(np.abs(r)) + 1) for r in runs])  # lengths were int(|return|) + 1
    success = np.mean([np.mean(r >= 400) for r in runs])
    assert ppo[5] == format_number(lengths) and ppo[6] == format_number(success)
    header = next(line for line in table.splitlines() if line.startswith("| Agent"))
    assert header.endswith("| Length (steps) | success | CIs cover |")


def test_table_cis_equal_stratified_bootstrap_on_the_same_data(fixture_db: dict) -> None:
    table = _section((fixture_db["out"] / "report.md").read_text(), "### CartPole-v1")
    ppo_matrix = _run_scores(fixture_db, "CartPole-v1")  # the latest evaluation per run, not the older one
    random_matrix = fixture_db["returns"][("CartPole-v1", "random", None)][:, None]  # (20 episodes, 1)
    for agent, matrix in (("ppo", ppo_matrix), ("random", random_matrix)):
        row = _row(table, agent)
        for column, fn in ((2, stats.mean), (3, stats.median), (4, stats.iqm)):
            point, low, high = stats.stratified_bootstrap_ci(matrix, fn, reps=REPS, confidence=0.95, seed=SEED)
            assert row[column] == format_interval(point, low, high), (agent, column)
            assert low < point < high  # a real interval, not a degenerate one
    assert _row(table, "ppo")[2].startswith(format_number(float(np.mean(ppo_matrix))))


def test_protocol_failed_runs_and_raw_episodes(fixture_db: dict) -> None:
    out = fixture_db["out"]
    md = (out / "report.md").read_text()
    assert md.count("Generated at 2025-01-31 12:00:00 UTC") == 1
    protocol = _section(md, "## Protocol")
    seeds = "1000000\u20131000009 (3 evaluations), 1000000\u20131000019 (1 evaluation); one episode per seed"
    assert seeds in protocol  # ppo: 3 runs on seeds 1000000..9 (the older evaluation not counted); random
    assert "deterministic, greedy (all 4 evaluations)" in protocol
    assert "best (3 evaluations), none (1 evaluation)" in protocol
    assert "| torch | 2.13.0 |" in protocol and "0123456789abcdef (all 3 runs)" in protocol
    assert f"{REPS} resamples, 95% percentile intervals, seed {SEED}" in protocol

    failed = _section(md, "## Failed, interrupted and unevaluated runs")
    row = _row(failed, "ppo_CartPole-v1_s3")
    assert row[4] == "failed" and row[5] == "RuntimeError: loss became NaN at step 4096"
    assert row[6] == f"`{FAILED_COMMAND}`"
    assert "ppo_Acrobot" not in failed  # runs of other envs are outside the selection

    assert "[episodes.csv](episodes.csv)" in md
    with (out / "episodes.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 10 + 20  # latest evaluations only
    ppo1 = [r for r in rows if r["run_id"] == "ppo_CartPole-v1_s1"]
    assert [float(r["return"]) for r in ppo1] == fixture_db["returns"][("CartPole-v1", "ppo", 1)].tolist()
    assert [int(r["seed"]) for r in ppo1] == list(EVAL_SEEDS)
    assert {r["success"] for r in ppo1} <= {"0.0", "1.0"} and ppo1[0]["checkpoint"] == "best"


def test_html_is_offline_and_the_video_is_a_relative_file(fixture_db: dict) -> None:
    out = fixture_db["out"]
    page = fixture_db["html"].read_text()
    assert "http://" not in page and "https://" not in page
    links = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert links and all(not re.match(r"^[a-z]+://", link) and not link.startswith("//") for link in links)
    assert "<link" not in page and "@import" not in page and "url(" not in page  # no external CSS or fonts
    assert page.count('src="data:image/png;base64,') == 2
    videos = re.findall(r"<video ([^>]*)>", page)
    assert videos == ['controls muted playsinline preload="metadata" src="videos/ppo__CartPole-v1.mp4"']
    assert (out / "videos" / "ppo__CartPole-v1.mp4").read_bytes() == fixture_db["video"].read_bytes()
    # The caption names the median-return episode: lower middle of 10, ties by index.
    returns = fixture_db["returns"][("CartPole-v1", "ppo", 1)]
    median_index = sorted(range(10), key=lambda i: (returns[i], i))[4]
    md = (out / "report.md").read_text()
    videos_md = _section(md, "## Videos")
    assert "[ppo on CartPole-v1](videos/ppo__CartPole-v1.mp4)" in videos_md
    assert f"seed {EVAL_SEEDS[median_index]}, return {format_number(returns[median_index])}" in videos_md
    assert "random on CartPole-v1 (no video)" in videos_md


def test_same_database_and_seed_give_identical_files(fixture_db: dict, tmp_path: Path) -> None:
    again = write_report(fixture_db["db"], tmp_path, envs=["CartPole-v1"], reps=REPS, seed=SEED, now=NOW)
    out = fixture_db["out"]
    for name in ("report.md", "report.html", "episodes.csv", "figures/curves_CartPole-v1.png"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    assert again.read_bytes() == fixture_db["html"].read_bytes()
    other = write_report(fixture_db["db"], tmp_path / "s8", envs=["CartPole-v1"], reps=REPS, seed=SEED + 1, now=NOW)
    assert other.with_name("report.md").read_text() != (out / "report.md").read_text()  # the seed matters


def test_empty_selection_names_what_the_database_has(fixture_db: dict, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"agents: ppo, random; envs: Acrobot-v1, CartPole-v1"):
        write_report(fixture_db["db"], tmp_path, envs=["MountainCar-v0"])
    with pytest.raises(ReportError, match=r"agent 'dqn'.*agents: ppo, random"):
        write_report(fixture_db["db"], tmp_path, agents=["dqn"])
    with pytest.raises(ReportError, match="No results database"):
        write_report(tmp_path / "missing.db", tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_a_missing_reference_score_never_blocks_the_report(fixture_db: dict, tmp_path: Path) -> None:
    write_report(fixture_db["db"], tmp_path, reps=REPS, seed=SEED, now=NOW)  # Acrobot-v1 has no reference
    md = (tmp_path / "report.md").read_text()
    for env_id in ("CartPole-v1", "Acrobot-v1"):  # per-env tables are always written
        assert _row(_section(md, f"### {env_id}"), "ppo")[1] == "3"
    across = _section(md, "## Across envs")
    assert "Acrobot-v1 is left out of the aggregates: it has no reference score" in across
    assert "--reference 'Acrobot-v1=SCORE'" in across
    assert "1 of 2 have them, so none are shown" in across  # one env left: nothing to aggregate
    assert not (tmp_path / "figures" / "aggregates.png").exists()


def test_across_envs_aggregates_and_probability_of_improvement(fixture_db: dict, tmp_path: Path) -> None:
    write_report(
        fixture_db["db"], tmp_path, reps=REPS, seed=SEED, now=NOW, references={"Acrobot-v1": ACROBOT_REFERENCE}
    )
    md = (tmp_path / "report.md").read_text()
    across = _section(md, "## Across envs")
    r = fixture_db["returns"]
    acrobot_random = float(r[("Acrobot-v1", "random", None)].mean())  # no table entry: from the DB's random agent
    assert _row(across, "Acrobot-v1")[1:3] == [format_number(acrobot_random), format_number(ACROBOT_REFERENCE)]
    assert _row(across, "CartPole-v1")[1:3] == ["22.00", "500.0"]  # rlsuite's reference table

    def norm(x: np.ndarray, env_id: str) -> np.ndarray:
        lo, hi = (22.0, 500.0) if env_id == "CartPole-v1" else (acrobot_random, ACROBOT_REFERENCE)
        return (x - lo) / (hi - lo)

    ppo = np.hstack([norm(_run_scores(fixture_db, e), e) for e in ("Acrobot-v1", "CartPole-v1")])  # (3, 2)
    rnd = np.stack([norm(r[(e, "random", None)], e) for e in ("Acrobot-v1", "CartPole-v1")], axis=1)  # (20, 2)
    aggregates = _section(across, "### Aggregate scores")
    for agent, matrix in (("ppo", ppo), ("random", rnd)):
        row = _row(aggregates, agent)
        for column, name in ((2, "median"), (3, "iqm"), (4, "mean"), (5, "optimality_gap")):
            ci = stats.stratified_bootstrap_ci(matrix, stats.AGGREGATES[name], reps=REPS, seed=SEED)
            assert row[column] == format_interval(*ci, decimals=3), (agent, name)
    assert _row(aggregates, "ppo")[0] == "**ppo** \u2605 best" and _row(aggregates, "ppo")[1] == "3 runs"
    poi = _section(across, "### Probability of improvement")
    expected = stats.probability_of_improvement_ci(ppo, rnd, reps=REPS, confidence=0.95, seed=SEED)
    assert _row(poi, "P(ppo")[1] == format_interval(*expected, decimals=3) and expected[0] == 1.0
    for png in ("aggregates.png", "probability_of_improvement.png", "curves_Acrobot-v1.png"):
        assert (tmp_path / "figures" / png).is_file()
    assert _row(_section(md, "### Acrobot-v1"), "ppo")[1] == "3"  # the per-env table of the second env
    curves = _section(md, "## Learning curves")
    assert re.search(r"ppo_Acrobot-v1_s2: run folder \S+ is missing; skipped", curves)


def test_numbers_are_formatted_with_one_precision_per_interval() -> None:
    assert [format_number(x) for x in (0.12345, -0.0001, 3.14159, 337.44, 12345.6)] == [
        "0.123", "0.000", "3.14", "337.4", "12,346",
    ]  # fmt: skip
    assert format_interval(-76.06, -114.5, -33.95) == "-76.1 [-114.5, -34.0]"  # decimals of the largest
    assert format_interval(1.0, 0.995, 1.01, decimals=3) == "1.000 [0.995, 1.010]"


def test_mean_curve_interpolates_onto_the_shared_steps() -> None:
    a = (np.array([0.0, 10.0, 20.0]), np.array([0.0, 1.0, 2.0]))
    b = (np.array([0.0, 5.0, 20.0, 30.0]), np.array([0.0, 0.0, 4.0, 9.0]))
    curve = mean_curve([a, b], reps=200, confidence=0.95, seed=0)
    assert curve is not None and curve.num_runs == 2
    np.testing.assert_allclose(curve.steps, [0.0, 5.0, 10.0, 20.0])  # union of steps both runs cover
    # a at 5 -> 0.5; b at 10 -> 4 * 5 / 15; by hand.
    np.testing.assert_allclose(curve.mean, [0.0, (0.5 + 0.0) / 2, (1.0 + 4 / 3) / 2, (2.0 + 4.0) / 2])
    runs = np.array([[0.0, 0.5, 1.0, 2.0], [0.0, 0.0, 4 / 3, 4.0]])
    assert np.all(curve.low >= runs.min(0) - 1e-12) and np.all(curve.high <= runs.max(0) + 1e-12)
    assert np.all(curve.low <= curve.mean) and np.all(curve.mean <= curve.high)
    same = mean_curve([a, a, a], reps=200, confidence=0.95, seed=0)
    assert same is not None and np.allclose(same.low, same.high)  # identical runs: no uncertainty
    assert mean_curve([(np.array([0.0, 1.0]), np.zeros(2)), (np.array([2.0, 3.0]), np.zeros(2))], 10, 0.95, 0) is None


# ----------------------------------------------------------------------------------------------------
# The report in a real browser.

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


def _chromium() -> str | None:
    explicit = os.environ.get("RLSUITE_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The browser to drive, or a skip that says how to get one; under RLSUITE_REQUIRE_BROWSER=1 (set by
    .ci/run, which installs Chromium) a missing browser fails the test instead, so CI always runs it."""
    chromium = _chromium()
    if chromium is None:
        reason = "no Chromium binary (apt-get install chromium, or set RLSUITE_CHROMIUM=/path/to/chrome)"
        if os.environ.get("RLSUITE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}, and RLSUITE_REQUIRE_BROWSER=1 asks for the browser test to run")
        pytest.skip(reason)
    return chromium


def _codec(video: Path) -> str:
    """What ffmpeg says about the video stream, for a failure message that names the codec."""
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(video)], capture_output=True, text=True)
    return next((line.strip() for line in probe.stderr.splitlines() if "Video:" in line), "unknown codec")


_PLAY_VIDEO = """async () => {
  const v = document.querySelector("video");
  if (v.readyState < 1) {
    await new Promise((resolve, reject) => {
      v.addEventListener("loadedmetadata", resolve, {once: true});
      v.addEventListener("error", () => reject(new Error("media error " + (v.error && v.error.code)
                                                          + ": " + (v.error && v.error.message))), {once: true});
      setTimeout(() => reject(new Error("no loadedmetadata within 10 s")), 10000);
    });
  }
  const duration = v.duration;
  await v.play();
  const start = v.currentTime;
  await new Promise((resolve) => setTimeout(resolve, 700));
  return {duration, start, later: v.currentTime, width: v.videoWidth,
          h264: v.canPlayType('video/mp4; codecs="avc1.64001E"')};
}"""


@pytest.mark.slow
def test_report_renders_offline_in_headless_chromium(fixture_db: dict, tmp_path: Path) -> None:
    """The full two-env report (RLSUITE_REPORT_SCREENSHOT=path also saves a full-page screenshot)."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    chromium = require_chromium()
    html_path = write_report(
        fixture_db["db"], tmp_path / "report", reps=REPS, seed=SEED, references={"Acrobot-v1": ACROBOT_REFERENCE}
    )
    figures = html_path.read_text().count('src="data:image/png;base64,')
    assert figures == 6  # per env: scores and curves; across envs: aggregates and probability of improvement
    video = html_path.parent / "videos" / "ppo__CartPole-v1.mp4"
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(html_path.resolve().as_uri(), wait_until="load")
            images = page.evaluate("() => Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            assert len(images) == figures and all(complete and width > 0 for complete, width in images), images
            try:
                played = page.evaluate(_PLAY_VIDEO)
            except playwright.Error as err:
                pytest.fail(f"Chromium ({chromium}) could not play the report's video ({_codec(video)}): {err}")
            assert played["duration"] > 0 and played["width"] > 0, played
            assert played["later"] > played["start"], f"video did not advance ({_codec(video)}): {played}"
            screenshot = os.environ.get("RLSUITE_REPORT_SCREENSHOT")
            if screenshot:
                page.evaluate("() => { const v = document.querySelector('video'); v.pause(); v.currentTime = 1.0; }")
                page.wait_for_timeout(300)
                page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    assert requests and any(url.endswith("videos/ppo__CartPole-v1.mp4") for url in requests)
    leaving = [url for url in requests if not url.startswith(("file://", "data:"))]
    assert not leaving, f"the report requested non-local URLs: {leaving}"


def test_env_kwargs_variants_are_separate_results(tmp_path: Path) -> None:
    """A run evaluated on its training env and on held-out env kwargs: two results, each its latest."""
    db = tmp_path / "variants.db"
    held_out = {"profile": "held_out"}
    returns: dict[tuple[str, int], np.ndarray] = {}
    with ResultsStore(db) as store:
        for seed in range(2):
            run_id = f"ppo_s{seed}"
            store.record_run(RunRecord(run_id=run_id, agent="ppo", env_id="CartPole-v1", seed=seed, status="finished"))
            for kwargs, centre in (({}, 400.0), (held_out, 200.0), (held_out, 150.0)):  # held_out re-evaluated
                protocol = {"env_kwargs": kwargs} if kwargs else {}
                values = np.full(10, centre + seed)
                store.record_evaluation(
                    EvaluationRecord(run_id=run_id, agent="ppo", env_id="CartPole-v1", checkpoint="best",
                                     checkpoint_step=1, deterministic=True, seeds=EVAL_SEEDS, protocol=protocol),
                    _episodes(values, EVAL_SEEDS, False),
                )  # fmt: skip
                returns[("held_out" if kwargs else "plain", seed)] = values
        store.record_run(RunRecord(run_id="baseline:random", agent="random", env_id="CartPole-v1", seed=None,
                                   status="baseline"))
        store.record_evaluation(
            EvaluationRecord(run_id="baseline:random", agent="random", env_id="CartPole-v1", checkpoint="none",
                             checkpoint_step=None, deterministic=True, seeds=EVAL_SEEDS, protocol={"env_kwargs": held_out}),
            _episodes(np.full(10, 20.0), EVAL_SEEDS, False),
        )  # fmt: skip
        latest = [e for e in store.latest_evaluations() if e.agent == "ppo"]
        means = sorted(float(np.mean([ep.episode_return for ep in store.episodes(e.eval_id)])) for e in latest)
    assert len(latest) == 4  # 2 runs x 2 variants, the older held-out evaluations dropped
    assert means == [150.0, 151.0, 400.0, 401.0]

    write_report(db, tmp_path / "all", reps=REPS, seed=SEED, now=NOW, references={"CartPole-v1 (profile=held_out)": 300.0})
    md = (tmp_path / "all" / "report.md").read_text()
    plain, variant = _section(md, "### CartPole-v1"), _section(md, "### CartPole-v1 (profile=held_out)")
    assert _row(plain, "ppo")[2].startswith(format_number(400.5))
    assert _row(variant, "ppo")[2].startswith(format_number(150.5))
    across = _section(md, "## Across envs")
    assert "| CartPole-v1 (profile=held_out) |" in across and "given (--reference)" in across
    with (tmp_path / "all" / "episodes.csv").open(newline="") as f:
        kwargs_column = {row["env_kwargs"] for row in csv.DictReader(f)}
    assert kwargs_column == {"{}", '{"profile": "held_out"}'}

    # The table's reference score belongs to the registered env, not to a variant: the variant is left out
    # of the aggregates with a note saying how to include it, and the report is still written.
    write_report(db, tmp_path / "noref", reps=REPS, seed=SEED, now=NOW)
    noref = _section((tmp_path / "noref" / "report.md").read_text(), "## Across envs")
    assert "CartPole-v1 (profile=held_out) is left out of the aggregates: it has no reference score" in noref
    write_report(db, tmp_path / "norandom", agents=["ppo"], reps=REPS, seed=SEED, now=NOW,
                 references={"CartPole-v1 (profile=held_out)": 300.0})
    norandom = _section((tmp_path / "norandom" / "report.md").read_text(), "## Across envs")
    assert "it has no random score" in norandom
    assert "--env CartPole-v1 --env-kwarg profile=held_out" in norandom
    # One variant by its label; the env id selects all of them (checked above).
    write_report(db, tmp_path / "one", envs=["CartPole-v1 (profile=held_out)"], reps=REPS, seed=SEED, now=NOW)
    one = (tmp_path / "one" / "report.md").read_text()
    per_env = _section(one, "## Results per env")
    assert "### CartPole-v1 (profile=held_out)" in per_env and "### CartPole-v1\n" not in per_env


# ---------------------------------------------------------------------------------------------------
# Configurations are rows; differences from the leader decide the star.


def _cells(table: str) -> dict[str, list[str]]:
    """First cell (stars and bold stripped) -> the row's cells, for every row of the Markdown tables."""
    rows = {}
    for line in table.splitlines():
        if line.startswith("|") and not line.startswith(("| ---", "| Agent")):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            name = cells[0].replace("**", "").replace(" \u2605 best", "").replace(" = tied for best", "")
            rows[name] = cells
    return rows


def _record(store: ResultsStore, run: RunRecord, returns: list[float], protocol: dict | None = None) -> None:
    store.record_run(run)
    store.record_evaluation(
        EvaluationRecord(run_id=run.run_id, agent=run.agent, env_id=run.env_id, checkpoint="best", checkpoint_step=100,
                         deterministic=True, seeds=EVAL_SEEDS[: len(returns)], protocol=protocol or {}),
        _episodes(np.array(returns), EVAL_SEEDS[: len(returns)], False),
    )  # fmt: skip


def test_two_settings_are_two_rows_and_a_re_evaluation_is_one(tmp_path: Path) -> None:
    from rlsuite.agents.ppo import Settings
    from rlsuite.agents.settings import resolve_settings, settings_to_dict

    preset = settings_to_dict(resolve_settings(Settings, "ppo", "CartPole-v1"))
    slow = {**preset, "learning_rate": 1e-05}
    db = tmp_path / "results.db"
    with ResultsStore(db) as store:
        _record(store, RunRecord("ppo-s0-monday", "ppo", "CartPole-v1", 0, "finished", config=preset), [100.0] * 10)
        _record(store, RunRecord("ppo-s0-slow", "ppo", "CartPole-v1", 0, "finished", config=slow), [20.0] * 10)
        # the same configuration and seed again (a second `rlsuite demo`): replaces the first, never pools
        _record(store, RunRecord("ppo-s0-tuesday", "ppo", "CartPole-v1", 0, "finished", config=preset), [300.0] * 10)
        _record(store, RunRecord("ppo-s0-named", "ppo", "CartPole-v1", 0, "finished", config=slow, label="ppo-slow"),
                [30.0] * 10)
    write_report(db, tmp_path / "report", reps=REPS, seed=SEED, now=NOW)
    table = _section((tmp_path / "report" / "report.md").read_text(), "### CartPole-v1")
    rows = _cells(table.split("####")[0])
    assert set(rows) == {"ppo", "ppo (learning_rate=1e-05)", "ppo-slow"}
    assert rows["ppo"][1] == "1\u2020" and rows["ppo"][2].startswith("300.0")  # one run: the newest
    assert rows["ppo (learning_rate=1e-05)"][2].startswith("20.00")
    write_report(db, tmp_path / "named", agents=["ppo-slow"], reps=REPS, seed=SEED, now=NOW)  # a label selects
    named = _section((tmp_path / "named" / "report.md").read_text(), "### CartPole-v1")
    assert set(_cells(named.split("####")[0])) == {"ppo-slow"}


def test_difference_table_equals_the_bootstrap_of_the_same_data(fixture_db: dict) -> None:
    md = (fixture_db["out"] / "report.md").read_text()
    versus = _section(_section(md, "### CartPole-v1"), "#### Against the leader (ppo)")
    ppo = _run_scores(fixture_db, "CartPole-v1")  # (3 runs, 1)
    rnd = fixture_db["returns"][("CartPole-v1", "random", None)][:, None]  # one run: its 20 episodes
    row = _cells(versus)["random"]
    assert row[1] == format_interval(*stats.difference_ci(rnd, ppo, stats.iqm, reps=REPS, seed=SEED))
    assert row[2] == format_interval(*stats.probability_of_improvement_ci(rnd, ppo, reps=REPS, seed=SEED), decimals=3)
    assert row[3] == "below the leader" and "episode noise only" in row[4]
    assert "\u2605 ppo leads every other agent" in versus
    assert "at least 3 training seeds per configuration" in versus  # random has a single run


def test_no_star_when_the_difference_interval_holds_zero(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    with ResultsStore(db) as store:
        for seed, (a, b) in enumerate([(10.0, 11.0), (12.0, 13.0), (14.0, 9.0)]):
            _record(store, RunRecord(f"a{seed}", "a2c", "CartPole-v1", seed, "finished"), [a] * 5)
            _record(store, RunRecord(f"b{seed}", "dqn", "CartPole-v1", seed, "finished"), [b] * 5)
    write_report(db, tmp_path / "report", reps=REPS, seed=SEED, now=NOW)
    env = _section((tmp_path / "report" / "report.md").read_text(), "### CartPole-v1")
    assert "\u2605 best" not in env and "leads every other agent" not in env
    rows = _cells(env.split("####")[0])
    assert rows["a2c"][0] == "**a2c** = tied for best" and rows["dqn"][0] == "**dqn** = tied for best"
    low, high = stats.difference_ci(np.array([[11.0], [13.0], [9.0]]), np.array([[10.0], [12.0], [14.0]]),
                                    stats.iqm, reps=REPS, seed=SEED)[1:]
    assert low <= 0 <= high
    assert "No single winner: a2c, dqn are tied for the lead" in env


def test_validation_seed_evaluations_stay_out_of_reports(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    with ResultsStore(db) as store:
        _record(store, RunRecord("trial-0", "ppo", "CartPole-v1", 0, "finished", label="trial-0"), [400.0] * 10,
                protocol={"split": "validation"})
    with pytest.raises(ReportError, match="only validation-seed evaluations"):
        write_report(db, tmp_path / "only-validation", reps=REPS, seed=SEED, now=NOW)
    with ResultsStore(db) as store:
        _record(store, RunRecord("ppo-s0", "ppo", "CartPole-v1", 0, "finished"), [100.0] * 10)
    write_report(db, tmp_path / "report", reps=REPS, seed=SEED, now=NOW)
    table = _section((tmp_path / "report" / "report.md").read_text(), "### CartPole-v1")
    assert set(_cells(table.split("####")[0])) == {"ppo"}  # the tuning trial's validation score is not a row
