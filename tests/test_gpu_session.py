"""The one-command GPU session (amst_bench/gpu_session.py), the kernel profiler it runs
(train/profiler.py), and what both need: the CLI as `python -m amst_bench.cli`, and a checkout that
runs without being installed (PYTHONPATH only, no soundfile), as on a lent offline GPU machine.
The whole session as a CPU dry run, and taking its tarball back into a published tree, is an
integration test (several processes, about two minutes on a 2-core machine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import pytest

import amst_bench
from amst_bench import gpu_session
from amst_bench.train import profiler

ROOT = Path(__file__).resolve().parents[1]


def uninstalled_checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the source tree and an environment that imports it with no install of the package:
    run `python -S` (no site: no editable-install finder) with PYTHONPATH = the copy, then a folder
    linking every installed distribution but amst-bench (no amst_bench, no dist-info of it)."""
    tree = tmp_path / "checkout"
    for folder in ("amst_bench", "methods", "datasets"):
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        lowered = entry.name.lower()
        if lowered.startswith(("amst_bench", "amst-bench", "__editable__")) or entry.suffix == ".pth":
            continue
        (site / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(tree), str(site)])
    return tree, env


# ----------------------------------------------------------------------------- running the CLI as a module


def test_python_m_amst_bench_cli_list_runs_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "amst_bench.cli", "list"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "naive" in proc.stdout and "amst-alt" in proc.stdout and "synthetic" in proc.stdout


def test_the_cli_run_as_a_script_by_runpy_resolves_its_option_annotations():
    # runpy without alter_sys leaves another module as sys.modules["__main__"]: typing then looked
    # the options dataclasses' annotations up there (NameError: name 'ProfileOpt' is not defined).
    code = ("import runpy, sys\nsys.argv = ['amst-bench', 'bench', '--help']\n"
            "runpy.run_module('amst_bench.cli', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "--speeds" in proc.stdout and "NameError" not in proc.stderr


def test_an_uninstalled_checkout_finds_its_plugins_and_needs_no_soundfile(tmp_path):
    tree, env = uninstalled_checkout(tmp_path)
    listing = subprocess.run([sys.executable, "-S", "-m", "amst_bench.cli", "list"], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert "amst-alt" in listing.stdout and "synthetic" in listing.stdout
    code = (
        "import sys, importlib.metadata as md\n"
        "import amst_bench, amst_bench.methods, amst_bench.gpu_session, amst_bench.train.profiler\n"
        "from amst_bench import registry\n"
        "from amst_bench.runner import plan\n"
        "from amst_bench.train.environment import versions\n"
        "try:\n    md.version('amst-bench'); installed = True\n"
        "except md.PackageNotFoundError:\n    installed = False\n"
        "for name in registry.methods.names():\n    registry.methods.get(name)\n"
        "registry.datasets.get('synthetic')\n"
        "print(amst_bench.__file__, amst_bench.methods.__file__, installed, versions()['amst_bench'],\n"
        "      'soundfile' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    package, plugins, installed, version, soundfile = proc.stdout.split()
    assert package == str(tree / "amst_bench" / "__init__.py")
    assert plugins == str(tree / "methods" / "__init__.py")
    assert installed == "False" and version == amst_bench.__version__ and soundfile == "False"


def test_an_installed_package_keeps_its_own_plugin_folders():
    import amst_bench.methods

    assert Path(amst_bench.methods.__file__).parent == ROOT / "methods"
    assert sum(isinstance(f, amst_bench.source_tree.CheckoutPlugins) for f in sys.meta_path) == 1


def test_the_recorded_version_falls_back_to_the_checkouts_own(monkeypatch):
    from amst_bench.train import environment

    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(environment, "version", missing)
    assert environment.versions()["amst_bench"] == amst_bench.__version__


def test_reading_audio_without_soundfile_is_one_clear_error(monkeypatch, tmp_path):
    from amst_bench.data.preprocess import read_waveform
    from amst_bench.errors import UserError

    monkeypatch.setitem(sys.modules, "soundfile", None)  # as if not installed: its import fails
    with pytest.raises(UserError, match=r"clip\.wav: reading audio files needs the soundfile package"):
        read_waveform(tmp_path / "clip.wav")


# ----------------------------------------------------------------------------- the kernel profiler


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("void cudnn::ops::nchwToNhwcKernel<__nv_bfloat16, __nv_bfloat16, float, false, true>",
         "layout transforms"),
        ("void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1, true>", "batch norm"),
        ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128", "convolution"),
        ("sm90_xmma_wgrad_implicit_gemm_indexed_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", "convolution"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize64x64x64_warpgroupsize1x1x1", "matrix products"),
        ("aten::mkldnn_convolution", "convolution"),
        ("void at::native::batch_norm_collect_statistics_kernel<at::native::InvStd, float, float>",
         "batch norm"),
        ("void at::native::elementwise_kernel<128, 4, at::native::direct_copy_kernel_cuda>",
         "casts and copies"),
        ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedSgdMathFunctor>",
         "optimiser"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::clamp_min_scalar_kernel>", "other"),
    ],
)
def test_kernel_names_fall_into_their_groups(name, group):
    assert profiler.group_of(name) == group


def test_the_profiler_profiles_each_setting_on_the_cpu_and_writes_its_report(tmp_path, capsys):
    out = tmp_path / "profile.txt"
    profiler.main(["--device", "cpu", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--top", "5",
                   "--set", "encoder=tiny", "--set", "embedding_dim=32", "--set", "cpu_threads=1",
                   "--only", "fp32, NCHW (default)", "--only", "bf16, channels-last", "--out", str(out)])
    text = out.read_text()
    assert "| fp32, NCHW (default) |" in text and "| bf16, channels-last |" in text
    assert "## bf16, channels-last" in text and "channels_last" in text
    assert "operators' self CPU time: top 5" in text and "convolution" in text
    numbers = json.loads((tmp_path / "profile.txt.json").read_text())
    assert [s["label"] for s in numbers["settings"]] == ["fp32, NCHW (default)", "bf16, channels-last"]
    assert all(s["wall_ms_per_step"] > 0 and s["kernels"] for s in numbers["settings"])
    assert numbers["facts"]["input_shapes"] == {"audio": [1, 1024, 128], "visual": [3, 3, 224, 224]}
    assert "profiled bf16, channels-last:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "cpu", "--steps", "0"], "--steps and --top must be at least 1"),
        (["--device", "cpu", "--set", "epochs"], "--set epochs: expected FIELD=VALUE"),
        (["--device", "cpu", "--only", "fp8"], "--only 'fp8': expected one of fp32, NCHW (default)"),
        (["--device", "cpu", "--set", "encoder=huge"], "encoder"),
    ],
)
def test_profiler_mistakes_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        profiler.main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("amst-bench profiler: error: ") and message in err


# ----------------------------------------------------------------------------- the session's driver


def test_the_rest_phase_takes_every_other_method_the_published_ones_first():
    rest = gpu_session.rest_methods(dry_run=False)
    assert rest[:5] == ["ogm-ge", "pmr", "mslr", "amst-joint", "amst-full"]
    assert "naive" not in rest and "amst-alt" not in rest and "text" not in rest
    assert len(rest) == len(set(rest)) and {"umt", "audio", "visual"} <= set(rest)
    assert gpu_session.rest_methods(dry_run=True) == ["ogm-ge"]


def session(tmp_path, budget=100.0, dry_run=True):
    folder = tmp_path / "work" / gpu_session.FOLDER
    folder.mkdir(parents=True)
    return gpu_session.Session(folder, tmp_path / "out", budget, dry_run)


def test_a_phase_the_budget_cannot_cover_is_skipped_and_said(tmp_path, capsys):
    s = session(tmp_path, budget=gpu_session.PACK_RESERVE_S + 20)
    tee = gpu_session.Tee(open(s.folder / "session.log", "w"))
    packed = []
    phase = gpu_session.Phase("core", "the core", [sys.executable, "-c", "raise SystemExit(3)"], 60)
    record = gpu_session.run_phase(s, phase, tee, lambda: packed.append(1))
    assert record.status.startswith("skipped: about 60 s needed, ") and "of the budget left" in record.status
    assert s.records == [record] and packed == [1]
    assert "== core: skipped" in capsys.readouterr().out


def test_a_phase_past_its_cap_is_interrupted_and_what_it_printed_is_kept(tmp_path):
    s = session(tmp_path, budget=300)
    tee = gpu_session.Tee(open(s.folder / "session.log", "w"))
    slow = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    start = time.monotonic()
    capped = gpu_session.Phase("slow", "sleeps", slow, 1, cap_s=2)
    record = gpu_session.run_phase(s, capped, tee, lambda: None)
    assert time.monotonic() - start < 30  # interrupted (Ctrl-C), not waited for
    assert record.status.startswith("cut off after ")
    assert "(its cap); what finished before is kept" in record.status
    fails = gpu_session.Phase("bad", "fails", [sys.executable, "-c", "raise SystemExit(3)"], 1)
    assert gpu_session.run_phase(s, fails, tee, lambda: None).status == "failed (exit 3)"
    assert "started" in (s.folder / "session.log").read_text()


def test_packing_leaves_checkpoints_and_locks_out_and_writes_the_text_files_beside(tmp_path):
    s = session(tmp_path)
    for name in ("runs/a.json", "checkpoints/a.pt", "locks/a.lock", "leaderboards/timing.md"):
        (s.results / name).parent.mkdir(parents=True, exist_ok=True)
        (s.results / name).write_text("{}")
    (s.folder / "session.log").write_text("log\n")
    s.records.append(gpu_session.PhaseRecord("core", "the core", "python -m x", "done", 1.0))
    gpu_session.pack(s)
    with tarfile.open(s.out / gpu_session.TARBALL) as tar:
        names = set(tar.getnames())
    assert "gpu-session/results/runs/a.json" in names and "gpu-session/summary.md" in names
    assert not any("checkpoints" in n or "locks" in n for n in names)
    assert sorted(p.name for p in s.out.iterdir()) == ["gpu-session.tar.gz", "session.log", "summary.md",
                                                       "timing.md"]
    assert "| core | the core | done | 1 |" in (s.out / "summary.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--budget", "10"], "--budget: expected more than 15 seconds, got 10"),
     (["--out", "{file}"], "not a folder")],
)
def test_session_mistakes_are_one_line(tmp_path, capsys, args, message):
    (tmp_path / "file").write_text("")
    args = [a.replace("{file}", str(tmp_path / "file")) for a in args]
    with pytest.raises(SystemExit) as exit_:
        gpu_session.main([*args, "--work", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and message in err


@pytest.mark.integration
def test_the_cpu_dry_run_from_an_uninstalled_checkout_packs_every_phase_and_publishes(tmp_path):
    tree, env = uninstalled_checkout(tmp_path)
    out, work = tmp_path / "out", tmp_path / "work"
    proc = subprocess.run([sys.executable, "-S", "-m", "amst_bench.gpu_session", "--cpu-dry-run", "--out",
                           str(out), "--work", str(work)], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path, env={**env, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu-session.tar.gz", "profile.txt", "session.log",
                                                     "summary.md", "timing.md"]
    unpacked = tmp_path / "unpacked"
    with tarfile.open(out / gpu_session.TARBALL) as tar:
        tar.extractall(unpacked, filter="data")
    folder = unpacked / gpu_session.FOLDER
    phases = {r["name"]: r["status"] for r in json.loads((folder / "phases.json").read_text())}
    assert phases["core"] == phases["profile"] == phases["seeds"] == phases["rest (ogm-ge)"] == "done"
    # torch.compile takes minutes on a small CPU: the dry run cuts that phase at its cap on purpose
    assert phases["compile"] == "done" or (phases["compile"].startswith("cut off after ")
                                           and "(its cap)" in phases["compile"])
    runs = [json.loads(p.read_text()) for p in (folder / "results" / "runs").glob("*.json")]
    labels = {(r["method"], r["seed"], r["protocol"]["speed"]) for r in runs}
    expected = {(m, seed, speed) for m, seed in (("naive", 0), ("amst-alt", 0), ("naive", 1), ("ogm-ge", 0))
                for speed in ("default", "fast")}
    assert expected <= labels
    assert all(r["versions"]["amst_bench"] == amst_bench.__version__ for r in runs)
    assert all(r["seconds_per_epoch"]["floor"] for r in runs if r["protocol"].get("compile") is not True)
    timing = (folder / "results" / "leaderboards" / "timing.md").read_text()
    assert "### Training only ÷ floor" in timing and "speed=fast" in timing
    assert "| fp32, NCHW (default) |" in (folder / "profile.txt").read_text()
    facts = (folder / "facts.txt").read_text()
    assert "nvidia-smi: not found" in facts or "NVIDIA" in facts
    assert '"cuda_available"' in facts and "amst-bench: error" not in (folder / "session.log").read_text()
    # The import step (README): the runs into a published tree, its tables regenerated. A copy of the
    # repository's published runs, so the dry run's CPU numbers never reach the real one.
    published, boards = tmp_path / "published", tmp_path / "leaderboards"
    shutil.copytree(ROOT / "published", published)
    before = len(list((published / "runs").glob("*.json")))
    publish = ["publish", "--from", str(folder / "results"), "--to", str(published), "--leaderboard-dir",
               str(boards)]
    proc = subprocess.run([sys.executable, "-m", "amst_bench.cli", *publish], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert len(list((published / "runs").glob("*.json"))) == before + len(runs)
    assert "max_train_steps=1" in (boards / "timing.md").read_text()
