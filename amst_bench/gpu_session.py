"""One command for a short, lent, offline GPU session (issue 11's GPU figures): every timing the issue
asks for, in priority order, within a time budget, packed into one tarball that comes back.

    PYTHONUNBUFFERED=1 PYTHONPATH=$PWD python3 -m amst_bench.gpu_session      # on the GPU machine
    python -m amst_bench.gpu_session --cpu-dry-run --out /tmp/gpu-out         # the same, tiny, on a CPU

Nothing needs installing: it runs from the checkout (PYTHONPATH) with torch, typer, rich, pandas,
tabulate, numpy and matplotlib, and needs no network. Each phase is its own process
(`python -m amst_bench.cli bench ...`, `python -m amst_bench.train.profiler`), writing into one
results folder (every result file is written atomically), and after each phase the whole folder
is packed again into <out>/gpu-session.tar.gz (written under a temporary name, then renamed), so
a phase cut off by the budget, or the whole command killed, loses nothing finished before it.

Phases, in priority order (README, Performance, "On a lent GPU"):
  facts     nvidia-smi, python/torch/CUDA/cuDNN versions, the device (facts.txt)
  core      bench --methods naive,amst-alt --speeds default,fast (the ≥ 3× and ≤ 1.10 × floor targets)
  profile   the kernel profile of naive's step, fp32 NCHW / bf16 NCHW / bf16 channels-last, with and
            without cudnn.benchmark, and speed=fast (profile.txt, train/profiler.py)
  seeds     bench --methods naive --speeds default,fast --seeds 0,1,2 (fast's accuracy within noise)
  compile   bench --methods naive --speeds fast --set compile=true (minutes of compilation)
  rest      every other method, default and fast, a few methods per process while the budget lasts

A phase starts only when the budget left covers its estimate (else: skipped, and said), and runs
at most until the budget is spent (then interrupted like Ctrl-C: finished runs are kept).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from amst_bench.atomic import atomic_write_text

CHECKOUT = Path(__file__).resolve().parents[1]
TARBALL = "gpu-session.tar.gz"
FOLDER = "gpu-session"  # the one folder inside the tarball
PACK_RESERVE_S = 15.0  # kept back from the budget for the last packing
GRACE_S = 20.0  # after the interrupt, before a phase's processes are killed
DEFAULT_BUDGET_S = 480.0  # about 8 minutes: a 10-minute command with room to pack and return
CORE_METHODS = ("naive", "amst-alt")
# The rest in order: first the methods of the published H100 table, then the others.
REST_FIRST = ("ogm-ge", "pmr", "mslr", "amst-joint", "amst-full", "mla", "amst-auto", "shapley-alt", "miles")
NOT_ON_SYNTHETIC = ("text",)  # needs a text modality; the bench data is audio-visual
REST_CHUNK = 3  # methods per process in the rest phase

# On the GPU: the bench profile as it is (paper encoders and sizes, 5 epochs, 1,024 samples).
GPU_BENCH = ("--device", "cuda")
GPU_PROFILER = ("--device", "cuda")
# The CPU dry run: the same phases, tiny: the smoke encoders on the bench's input sizes, one step.
DRY_SETS = ("encoder=tiny", "embedding_dim=32", "batch_size=4", "synthetic_samples=40", "epochs=1",
            "cpu_threads=1")
DRY_BENCH = ("--device", "cpu", "--steps", "1", *(a for s in DRY_SETS for a in ("--set", s)))
DRY_PROFILER = ("--device", "cpu", "--batch-size", "2", "--steps", "1", "--warmup", "1",
                "--set", "encoder=tiny", "--set", "embedding_dim=32", "--set", "cpu_threads=1",
                "--only", "fp32, NCHW (default)", "--only", "speed=fast")
DRY_COMPILE_CAP_S = 15.0  # torch.compile takes minutes on a 2-core CPU: the dry run cuts it on purpose


@dataclass
class Phase:
    """One step of the session: a process to run, its estimated seconds (it starts only when that
    much budget is left) and an optional cap of its own."""

    name: str
    what: str
    argv: list[str]
    estimate_s: float
    cap_s: float | None = None


@dataclass
class PhaseRecord:
    name: str
    what: str
    command: str
    status: str  # done | failed (exit N) | cut off after N s (budget|cap) | skipped: why
    seconds: float = 0.0


@dataclass
class Session:
    """Where the session writes, how long it may take and what it has done so far."""

    folder: Path  # <work>/gpu-session: packed whole
    out: Path  # the tarball and a few loose files land here ($OUT)
    budget_s: float
    dry_run: bool
    started: float = field(default_factory=time.monotonic)
    records: list[PhaseRecord] = field(default_factory=list)

    @property
    def results(self) -> Path:
        return self.folder / "results"

    @property
    def profile(self) -> Path:
        return self.folder / "profile.txt"

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started) - PACK_RESERVE_S


def python(*args: str) -> list[str]:
    """This interpreter, started as this one was with respect to site-packages (-S passed on)."""
    return [sys.executable, *(["-S"] if sys.flags.no_site else []), *args]


def python_module(module: str, *args: str) -> list[str]:
    return python("-m", module, *args)


def bench(session: Session, *args: str) -> list[str]:
    flags = DRY_BENCH if session.dry_run else GPU_BENCH
    return python_module("amst_bench.cli", "bench", *args, *flags, "--results-dir", str(session.results))


def rest_methods(dry_run: bool) -> list[str]:
    """Every registered method but the core ones and those that cannot run on the bench data, the
    published table's first; the dry run takes only the first."""
    from amst_bench import registry

    names = [n for n in registry.methods.names() if n not in CORE_METHODS + NOT_ON_SYNTHETIC]
    ordered = [n for n in REST_FIRST if n in names] + [n for n in names if n not in REST_FIRST]
    return ordered[:1] if dry_run else ordered


def fixed_phases(session: Session) -> list[Phase]:
    """Every phase but `rest`, whose size is decided from how long `core` took."""
    profiler = DRY_PROFILER if session.dry_run else GPU_PROFILER
    seeds = "0,1" if session.dry_run else "0,1,2"
    return [
        Phase("core", "naive and amst-alt, default and fast, with the compute floor",
              bench(session, "--methods", ",".join(CORE_METHODS), "--speeds", "default,fast"), 90),
        Phase("profile", "kernel profile of naive's step, layout / precision / autotuning settings",
              python_module("amst_bench.train.profiler", *profiler, "--out", str(session.profile)), 60),
        Phase("seeds", f"naive, default and fast, seeds {seeds} (accuracy within noise)",
              bench(session, "--methods", "naive", "--speeds", "default,fast", "--seeds", seeds), 60),
        Phase("compile", "naive under speed=fast with torch.compile",
              bench(session, "--methods", "naive", "--speeds", "fast", "--set", "compile=true"), 150,
              DRY_COMPILE_CAP_S if session.dry_run else None),
    ]


def print_facts() -> None:
    """The Python side of the machine, as JSON (run in its own process: CUDA is never initialised in
    the session's own process, which holds no GPU memory)."""
    import importlib.util
    import platform

    import torch

    facts = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
             "torch": torch.__version__, "cuda": torch.version.cuda,
             "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
             "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        facts.update(device=p.name, capability=f"{p.major}.{p.minor}",
                     multiprocessors=p.multi_processor_count, memory_gib=round(p.total_memory / 2**30, 1))
    packages = ("typer", "rich", "pandas", "tabulate", "numpy", "matplotlib", "torchvision", "torchaudio",
                "soundfile", "triton")
    facts["packages_present"] = {n: importlib.util.find_spec(n) is not None for n in packages}
    print(json.dumps(facts, indent=2))


class Tee:
    """A phase's output, line by line, to this process's stdout and the session log."""

    def __init__(self, log: TextIO):
        self.log = log
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        with self.lock:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.log.write(text)
            self.log.flush()

    def pump(self, stream: TextIO) -> threading.Thread:
        def run() -> None:
            for text in stream:
                self.line(text)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def run_process(argv: list[str], tee: Tee, limit_s: float, env: dict[str, str]) -> tuple[int | None, float]:
    """Run `argv` with its output teed; after `limit_s` interrupt its process group (as Ctrl-C:
    the CLI keeps finished runs), then kill it after GRACE_S. Returns (exit code or None when cut
    off, seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env=env, cwd=CHECKOUT, process_group=0, preexec_fn=_interruptible)
    pump = tee.pump(proc.stdout)
    try:
        code: int | None = proc.wait(timeout=max(limit_s, 1.0))
    except subprocess.TimeoutExpired:
        code = None
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    pump.join(timeout=5)
    return code, time.monotonic() - start


def _interruptible() -> None:
    """In the child before it starts: Ctrl-C's default back, since a command started in the
    background (as a remote runner may start this one) inherits SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def child_env() -> dict[str, str]:
    """The phases import the checkout itself (PYTHONPATH), unbuffered, whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(CHECKOUT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_phase(session: Session, phase: Phase, tee: Tee, pack: Callable[[], None]) -> PhaseRecord:
    command = shlex.join(["python", *phase.argv[1:]] if phase.argv[0] == sys.executable else phase.argv)
    left = session.left()
    if left < phase.estimate_s:
        status = f"skipped: about {phase.estimate_s:.0f} s needed, {max(left, 0):.0f} s of the budget left"
        tee.line(f"== {phase.name}: {status}\n")
        record = PhaseRecord(phase.name, phase.what, command, status)
        session.records.append(record)
        pack()
        return record
    limit = min(left, phase.cap_s) if phase.cap_s is not None else left
    why = "its cap" if phase.cap_s is not None and phase.cap_s <= left else "the budget"
    tee.line(f"== {phase.name}: {phase.what} (at most {limit:.0f} s)\n== $ {command}\n")
    code, seconds = run_process(phase.argv, tee, limit, child_env())
    if code is None:
        status = f"cut off after {seconds:.0f} s ({why}); what finished before is kept"
    else:
        status = "done" if code == 0 else f"failed (exit {code})"
    tee.line(f"== {phase.name}: {status}" + ("" if code is None else f" in {seconds:.0f} s") + "\n")
    record = PhaseRecord(phase.name, phase.what, command, status, round(seconds, 1))
    session.records.append(record)
    pack()
    return record


def run_rest(session: Session, tee: Tee, pack: Callable[[], None], core_seconds: float) -> None:
    """Chunks of the remaining methods while the budget lasts: a chunk of n methods is estimated at
    n/2 times what the core phase (2 methods) took, start-up included, and shrunk to what fits."""
    methods = rest_methods(session.dry_run)
    per_method = max(core_seconds / len(CORE_METHODS), 5.0)
    done = 0
    while done < len(methods):
        fits = int(session.left() // per_method)
        n = min(REST_CHUNK, fits, len(methods) - done)
        if n < 1:
            left = ", ".join(methods[done:])
            status = (f"skipped: about {per_method:.0f} s per method needed, {max(session.left(), 0):.0f} s "
                      f"of the budget left; not timed: {left}")
            tee.line(f"== rest: {status}\n")
            session.records.append(PhaseRecord("rest", "the remaining methods", "", status))
            pack()
            return
        chunk = methods[done:done + n]
        phase = Phase(f"rest {done // REST_CHUNK + 1}" if n == REST_CHUNK else f"rest ({', '.join(chunk)})",
                      f"{', '.join(chunk)}: default and fast",
                      bench(session, "--methods", ",".join(chunk), "--speeds", "default,fast"),
                      per_method * n)
        run_phase(session, phase, tee, pack)
        done += n


def write_facts(session: Session, tee: Tee) -> None:
    """nvidia-smi and the Python side's facts, into facts.txt and the log (never fails the session)."""
    parts = []
    smi = shutil.which("nvidia-smi")
    for args in (["nvidia-smi"], ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,"
                                  "power.limit", "--format=csv"]):
        if smi is None:
            parts.append(f"$ {shlex.join(args)}\nnvidia-smi: not found on this machine\n")
            break
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
        parts.append(f"$ {shlex.join(args)}\n{proc.stdout}{proc.stderr}")
    facts = python("-c", "from amst_bench.gpu_session import print_facts; print_facts()")
    proc = subprocess.run(facts, capture_output=True, text=True, timeout=300, env=child_env(), cwd=CHECKOUT)
    parts.append(f"$ python (facts)\n{proc.stdout}{proc.stderr}")
    parts.append(f"checkout: {CHECKOUT}; commit: {commit()}; budget: {session.budget_s:.0f} s; "
                 f"dry run: {session.dry_run}\n")
    text = "\n".join(parts)
    atomic_write_text(session.folder / "facts.txt", text)
    tee.line(text)


def commit() -> str:
    try:
        proc = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git)"
    return proc.stdout.strip() if proc.returncode == 0 else "unknown (not a git checkout)"


def regenerate_timing(session: Session) -> None:
    """timing.md and the other tables from every result stored so far (as `amst-bench leaderboard`
    writes them), so a phase cut off before its own tables still shows up."""
    from amst_bench.report.leaderboard import write_leaderboards
    from amst_bench.report.results import ResultStore

    results = ResultStore(session.results).load_results()
    if results:
        write_leaderboards(results, session.results / "leaderboards")


def summary(session: Session) -> str:
    lines = ["# GPU session", "", f"budget {session.budget_s:.0f} s; dry run: {session.dry_run}; "
             f"elapsed {time.monotonic() - session.started:.0f} s", "",
             "| phase | what | status | seconds |", "| --- | --- | --- | --- |"]
    lines += [f"| {r.name} | {r.what} | {r.status} | {r.seconds:.0f} |" for r in session.records]
    lines += ["", "Commands:", ""]
    lines += [f"- {r.name}: `{r.command}`" for r in session.records if r.command]
    return "\n".join(lines) + "\n"


def pack(session: Session) -> None:
    """The tables regenerated, the summary written, then the whole folder into the tarball (under a
    temporary name, then renamed), and its main text files beside it, in `out`."""
    try:
        regenerate_timing(session)
    except Exception as exc:  # tables are a convenience; the result files are what counts
        print(f"gpu-session: warning: tables not regenerated ({type(exc).__name__}: {exc})", file=sys.stderr)
    atomic_write_text(session.folder / "summary.md", summary(session))
    atomic_write_text(session.folder / "phases.json",
                      json.dumps([asdict(r) for r in session.records], indent=2) + "\n")
    session.out.mkdir(parents=True, exist_ok=True)
    partial = session.out / f"{TARBALL}.partial"
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(session.folder, arcname=FOLDER, filter=_skip_scratch)
    os.replace(partial, session.out / TARBALL)
    timing = session.results / "leaderboards" / "timing.md"
    for source, name in ((session.folder / "summary.md", "summary.md"), (timing, "timing.md"),
                         (session.profile, "profile.txt"),
                         (session.folder / "session.log", "session.log")):
        if source.is_file():
            atomic_write_text(session.out / name, source.read_text())


def _skip_scratch(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Checkpoints of cut-off runs (hundreds of MB with the paper encoders) and lock files stay out."""
    parts = Path(info.name).parts
    return None if "checkpoints" in parts or "locks" in parts else info


def run_session(session: Session) -> list[PhaseRecord]:
    session.folder.mkdir(parents=True, exist_ok=True)
    with open(session.folder / "session.log", "a", encoding="utf-8") as log:
        tee = Tee(log)
        packer = functools.partial(pack, session)
        tee.line(f"== gpu-session: budget {session.budget_s:.0f} s, results in {session.folder}, "
                 f"tarball {session.out / TARBALL}\n")
        write_facts(session, tee)
        packer()
        phases = fixed_phases(session)
        core = run_phase(session, phases[0], tee, packer)
        for phase in phases[1:]:
            run_phase(session, phase, tee, packer)
        run_rest(session, tee, packer, core.seconds if core.status == "done" else phases[0].estimate_s)
        tee.line(f"== gpu-session: finished in {time.monotonic() - session.started:.0f} s; "
                 f"{session.out / TARBALL}\n")
        packer()
    return session.records


def refuse(message: str) -> None:
    print(f"gpu-session: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="where the tarball goes (default: $OUT, else ./gpu-out)")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the session's folder is written (default: a new temporary folder)")
    parser.add_argument("--budget", type=float, default=None,
                        help=f"seconds for every phase together (default {DEFAULT_BUDGET_S:.0f}; "
                        "the dry run 900)")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="every phase, tiny, on the CPU (smoke encoders, one step), to test the script")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("OUT") or "gpu-out")
    budget = args.budget if args.budget is not None else (900.0 if args.cpu_dry_run else DEFAULT_BUDGET_S)
    if budget <= PACK_RESERVE_S:
        refuse(f"--budget: expected more than {PACK_RESERVE_S:.0f} seconds, got {budget:g}")
    if out.exists() and not out.is_dir():
        refuse(f"--out {out}: not a folder")
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="amst-gpu-session-"))
    folder = work / FOLDER
    if folder.exists() and any(folder.iterdir()):
        refuse(f"--work {work}: {folder} exists and is not empty (a session writes a fresh one)")
    sys.stdout.reconfigure(line_buffering=True)
    run_session(Session(folder.resolve(), out.resolve(), budget, args.cpu_dry_run))


if __name__ == "__main__":
    main()
