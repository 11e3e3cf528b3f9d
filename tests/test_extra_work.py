"""What each method's training does beyond the plain joint model's step (`extra_work_per_step`),
how timing.md marks it († and the floor note), and what a CPU section says is comparable."""

from __future__ import annotations

import re
import subprocess
import sys

from amst_bench import registry
from amst_bench.report.leaderboard import CPU_NOTE, CPU_SECONDS, extra_work, write_leaderboards
from amst_bench.report.results import RunResult
from tests.result_factory import make_result, result_payload

GPU = {"type": "cuda", "name": "NVIDIA H100"}
CPU = {"type": "cpu"}


def timed(variant: str, train_s: float, floor: float, label: str = "bench", device=GPU) -> RunResult:
    payload = result_payload(variant, train_s=train_s, epoch_s=train_s + 1, label=label, profile="bench",
                             device=device, epochs=5)
    payload["seconds_per_epoch"]["floor"] = floor
    return RunResult.from_json(payload)


def section(text: str, label: str) -> str:
    return text.split(f"## Protocol: {label}")[1].split("\n## ")[0]


def test_every_method_declares_its_extra_work_as_a_plain_string_in_its_own_class():
    """The leaderboard reads it from the source (no torch); it must say what the class says."""
    for name in registry.methods.names():
        cls = registry.methods.get(name)
        assert isinstance(cls.extra_work_per_step, str), name
        assert registry.methods.declared(name, "extra_work_per_step") == cls.extra_work_per_step, name
        assert extra_work(name) == cls.extra_work_per_step


def test_the_extra_work_set_follows_the_mechanisms():
    marked = {name for name in registry.methods.names() if extra_work(name)}
    # more passes, steps, encoders or epoch-hook work than the plain joint model
    assert {"pmr", "mla", "umt", "agm", "mmpareto", "gblending", "greedy", "sample-valuation",
            "shapley-alt", "amst-alt", "amst-auto", "amst-full", "amst-auto-full"} <= marked
    # a coefficient, a gradient rescale, extra loss terms on the same logits, rates, fewer passes
    assert not marked & {"naive", "audio", "visual", "text", "ogm-ge", "mslr", "mmcosine", "cml", "mbsd",
                         "amco", "opm", "amst-joint", "amst-auto-joint", "reconboost"}
    assert extra_work("amst-auto") == extra_work("amst-alt")  # the same step, skips chosen apart
    assert extra_work("amst-auto-full") == extra_work("amst-full")
    assert extra_work("no-such-method") == ""


def test_reading_the_extra_work_imports_no_torch():
    code = ("import sys; from amst_bench.report.leaderboard import extra_work; "
            "print(extra_work('umt')); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    phrase, torch_loaded = out.strip().splitlines()
    assert "teacher" in phrase and torch_loaded == "False"


def test_timing_md_marks_the_sections_methods_and_lists_only_them(tmp_path):
    results = [timed("naive", 1.1, 1.0), timed("umt", 4.0, 1.0), timed("ogm-ge", 1.2, 1.0),
               timed("amst-alt[skipped_forward=none]", 1.2, 1.0),
               timed("naive", 1.1, 1.0, label="bench (epochs=2)"),
               timed("mla", 2.0, 1.0, label="bench (epochs=2)")]
    write_leaderboards(results, tmp_path, figures=False)
    text = (tmp_path / "timing.md").read_text()
    bench = section(text, "bench\n")
    ratio = bench.split("### Training only ÷ floor")[1]
    assert re.search(r"^\| umt † ", ratio, flags=re.M) and re.search(r"^\| naive  ", ratio, flags=re.M)
    assert re.search(r"^\| ogm-ge  ", ratio, flags=re.M)  # a gradient rescale: no †
    assert re.search(r"^\| amst-alt\[skipped_forward=none\] † ", ratio, flags=re.M)  # a variant: its method's
    note = next(line for line in bench.splitlines() if line.startswith("Floor:"))
    listed = note.split("(†: ")[1].split("). A ratio")[0]
    assert listed == f"umt: {extra_work('umt')}; amst-alt: {extra_work('amst-alt')}"  # row order
    assert "mla" not in listed and "pmr" not in note  # other sections' and absent methods: not here
    other = section(text, "bench (epochs=2)")
    assert f"(†: mla: {extra_work('mla')})" in other
    plain = section(write_and_read(tmp_path / "plain", [timed("naive", 1.1, 1.0)]), "bench")
    assert "†" not in plain and "that work. A ratio" in plain


def write_and_read(folder, results) -> str:
    write_leaderboards(results, folder, figures=False)
    return (folder / "timing.md").read_text()


def test_a_cpu_section_says_its_side_by_side_ratios_compare(tmp_path):
    results = [timed("naive", 2.0, 1.8, device=CPU), timed("naive", 1.0, 0.9, label="bench (speed=fast)",
                                                          device=CPU)]
    text = write_and_read(tmp_path / "a", results)
    default, fast = section(text, "bench — "), section(text, "bench (speed=fast) — ")
    for part in (default, fast):
        assert part.startswith("CPU: not comparable\n")  # the header marker
        # the seconds: still no speed-ups against naive; the ratios: comparable on this machine
        assert f"These runs ran on the CPU, {CPU_SECONDS} The training ÷ floor" in part
        assert "comparable on the machine that measured them" in part
    assert "fast ÷ default" not in default.split("###")[0]
    assert "The training ÷ floor and fast ÷ default ratios below are side-by-side measurements" in fast
    assert "### Fast ÷ default (`bench`), training only" in fast
    # seconds alone (a smoke run): the note says nothing is comparable, as before
    smoke = section(write_and_read(tmp_path / "b", [make_result("naive", label="smoke")]), "smoke — ")
    note = smoke.split("###")[0].strip().splitlines()[-1]
    assert note == CPU_NOTE and "side-by-side" not in smoke
