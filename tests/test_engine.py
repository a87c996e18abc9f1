"""The execution engine: worker processes, crashes, timeouts, slots and GPUs, dependencies, output, Ctrl-C."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, read_log, run_script

from cool_runner import ConfigError, Expander, UsageError, load_study
from cool_runner.cli import run_main
from cool_runner.run.deps import waves
from cool_runner.run.gpus import layout, parse_gpus, visible_gpus

HEAD = "Module: mymod\nYamlLog: log.yaml\n"

CRASHES = """
import ctypes, os, resource, signal, subprocess, sys, time

def hog():
    # A C library that does not check malloc: under the memory limit the allocation fails and it crashes.
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as handle:
        used = int(handle.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), hard))
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    size = 1 << 31
    address = libc.malloc(ctypes.c_size_t(size))
    ctypes.memset(address or 0, 1, size)

def main(exp):
    print("starting", exp.kind, flush=True)
    exp.PID = os.getpid()
    if exp.kind == "segfault":
        ctypes.string_at(0)
    elif exp.kind == "exit":
        sys.exit(3)
    elif exp.kind == "os_exit":
        os._exit(0)
    elif exp.kind == "hog":
        hog()
    elif exp.kind == "oom_kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif exp.kind == "hang":
        for tick in range(1000):
            print(f"tick {tick}", flush=True)
            time.sleep(0.05)
    exp.OK = True
"""

CRASH_STUDY = HEAD + "".join(f"---\nName: {kind}\nkind: {kind}\n" for kind in
                             ["segfault", "exit", "os_exit", "hog", "oom_kill"])
CRASH_STUDY += "---\nName: hang\nkind: hang\nTimeout: 1\n---\nName: fine\nkind: fine\n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [[], ["--isolate"]], ids=["long-lived", "isolate"])
def test_crashes_fail_only_their_experiment(workdir, write, mode):
    write("mymod.py", CRASHES)
    write("experiment.yaml", CRASH_STUDY)
    result = run_script("run.py", *mode, cwd=workdir, timeout=100)
    assert result.returncode == 1, result.stderr
    log = {r["Name"]: r for r in read_log(workdir / "log.yaml")}
    assert len(log) == 7
    assert {name: r["STATUS"] for name, r in log.items()} == {**{n: "failed" for n in log}, "fine": "done"}
    errors = {name: r.get("ERROR", "") for name, r in log.items()}
    assert errors["segfault"].startswith("killed by SIGSEGV (segmentation fault")
    assert "mymod.py\", line 19 in main" in errors["segfault"]  # the end of its output: where it crashed
    assert errors["exit"] == "SystemExit: the module called sys.exit(3)"
    assert errors["os_exit"].startswith("its process exited with code 0 before reporting a result")
    assert errors["hog"].startswith("killed by SIGSEGV")
    assert errors["oom_kill"].startswith("killed by SIGKILL (killed from outside: the out-of-memory killer")
    assert errors["hang"].startswith("timed out after 1 s (Timeout)")
    assert errors["hang"].splitlines()[-1].strip().startswith("tick ")
    assert log["fine"]["OK"] is True
    assert "1 done, 6 failed" in result.stdout


RECORDER = """
import os, time
def main(exp):
    exp.T0 = time.time()
    time.sleep(exp.get("sleep", 0))
    exp.PID = os.getpid()
    exp.T1 = time.time()
    if exp.get("fail"):
        raise RuntimeError("this link broke")
"""


def test_long_lived_worker_runs_experiments_one_after_another(workdir, write):
    write("mymod.py", RECORDER)
    write("experiment.yaml", HEAD + "---\nName: a\n---\nName: b\n---\nName: c\n")
    assert run_main(["--exp", "experiment.yaml"]) == 0
    log = read_log(workdir / "log.yaml")
    assert len({r["PID"] for r in log}) == 1 and log[0]["PID"] != os.getpid()
    assert [r["INDEX"] for r in log] == [0, 1, 2] and all(r["SLOT"] == 0 for r in log)


def test_isolate_gives_every_experiment_its_own_process(workdir, write):
    write("mymod.py", RECORDER)
    write("experiment.yaml", "Global: {isolate: true}\n" + HEAD + "---\nName: a\n---\nName: b\n---\nName: c\n")
    assert run_main(["--exp", "experiment.yaml"]) == 0
    assert len({r["PID"] for r in read_log(workdir / "log.yaml")}) == 3


CHAIN = HEAD + """sleep: 1.0
---
Name: c1
x: 1
---
Name: c2
x: parse E[-1].x + 1
---
Name: c3
x: parse E['c2'].x + 1
""" + "".join(f"---\nName: free{i}\nx: {i}\n" for i in range(4))


def _overlap(a: dict, b: dict) -> bool:
    return a["T0"] < b["T1"] and b["T0"] < a["T1"]


@pytest.mark.timeout(120)
def test_chain_runs_in_order_while_the_rest_overlaps(workdir, write):
    write("mymod.py", RECORDER)
    write("experiment.yaml", CHAIN)
    assert run_main(["--exp", "experiment.yaml", "--workers", "3"]) == 0
    log = {r["Name"]: r for r in read_log(workdir / "log.yaml")}
    assert (log["c2"]["After"], log["c3"]["After"]) == ([0], [1])
    assert log["c1"]["T1"] <= log["c2"]["T0"] and log["c2"]["T1"] <= log["c3"]["T0"]
    free = [log[f"free{i}"] for i in range(4)]
    assert all("After" not in r for r in free)
    everything = list(log.values())
    assert any(_overlap(a, b) for a in free for b in everything if a is not b)
    assert len({r["SLOT"] for r in everything}) == 3
    assert {r["x"] for r in free} == {0, 1, 2, 3}


def test_a_failed_link_skips_its_dependants(workdir, write):
    write("mymod.py", RECORDER)
    write("experiment.yaml", HEAD + """---
Name: a
fail: true
---
Name: b
x: parse E['a'].get('x', 0)
---
Name: c
x: parse E[-1].x
---
Name: d
After: [a]
---
Name: free
x: parse E[-1].get('x')
After: []
""")
    assert run_main(["--exp", "experiment.yaml", "--workers", "2"]) == 1
    log = {r["Name"]: r for r in read_log(workdir / "log.yaml")}
    assert {n: r["STATUS"] for n, r in log.items()} == {"a": "failed", "b": "skipped", "c": "skipped",
                                                         "d": "skipped", "free": "done"}
    assert log["b"]["ERROR"] == "dependency 0 (a) failed"
    assert log["c"]["ERROR"] == "dependency 1 (b) was skipped"
    assert log["d"]["After"] == [0] and log["free"]["After"] == []
    assert "T0" not in log["b"]


@pytest.mark.parametrize(
    ("expression", "after"),
    [
        pytest.param("E[-1].x", [2], id="previous"),
        pytest.param("E[0].x", [0], id="first"),
        pytest.param("E['b'].x", [1], id="by-name"),
        pytest.param("sum(e.x for e in E)", [0, 1, 2], id="comprehension"),
        pytest.param("f'{E[-2].x}-{E[0].x}'", [0, 1], id="f-string"),
        pytest.param("[e.x for e in E[1:]]", [1, 2], id="slice"),
        pytest.param("len(E)", None, id="length-only"),
        pytest.param("E[-1].x if False else 3", None, id="not-evaluated"),
    ],
)
def test_dependencies_are_what_parse_read_through_E(write, expression, after):
    path = write("experiment.yaml", HEAD + f"---\nName: a\nx: 1\n---\nName: b\nx: 2\n---\nName: c\nx: 3\n"
                                           f"---\nName: d\ny: parse {expression}\n")
    experiments = Expander(load_study(str(path)), rng=random.Random(0)).expand()
    assert experiments[3].values.get("After") == after
    assert experiments[3].after == (after or [])


def test_after_adds_names_and_indices_and_skip_experiments_are_never_waited_for(write):
    path = write("experiment.yaml", HEAD + """---
Name: a
Repeat: 2
---
Name: skip
z: 1
---
Name: c
After: [a, 0]
y: parse E[-1].z
""")
    experiments = Expander(load_study(str(path)), rng=random.Random(0)).expand()
    assert experiments[3].values["After"] == [0, 1]
    assert waves(experiments) == {0: 1, 1: 1, 3: 2}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param("After: [5]", "After: 5 is not an earlier experiment (this one is 1)", id="later-index"),
        pytest.param("After: [nobody]", "After: no earlier experiment is named 'nobody'", id="unknown-name"),
        pytest.param("After: [1.5]", "After: 1.5 is neither an experiment index nor a Name", id="float"),
        pytest.param("Timeout: -3", "Timeout: must be a number of seconds above 0, not -3", id="timeout"),
        pytest.param("Timeout: soon", "Timeout: must be a number of seconds above 0, not 'soon'", id="timeout-word"),
    ],
)
def test_runner_key_errors(write, body, fragment):
    path = write("experiment.yaml", HEAD + f"---\nName: a\n---\nName: b\n{body}\n")
    with pytest.raises(ConfigError) as info:
        Expander(load_study(str(path))).expand()
    assert fragment in str(info.value) and info.value.line == 7 and info.value.experiment == 1
    assert info.value.name == "b"


@pytest.mark.parametrize(
    ("args", "settings", "fragment"),
    [
        pytest.param(["--workers", "0"], "", "argument --workers: '0' is not a whole number of at least 1",
                     id="workers-zero"),
        pytest.param([], "workers: 0", "Global.workers: workers must be a whole number of at least 1",
                     id="global-workers"),
        pytest.param([], "gpus: true", "Global.gpus: gpus must be a list of GPU ids or 'all'", id="global-gpus"),
        pytest.param([], "isolate: maybe", "Global.isolate: isolate must be true or false", id="global-isolate"),
        pytest.param(["--per-gpu", "2"], "", "--per-gpu: --per-gpu needs GPUs", id="per-gpu-alone"),
        pytest.param(["--gpus", "0,0"], "", "--gpus: GPU 0 is listed twice", id="gpu-twice"),
        pytest.param(["--gpus", "0,1", "--per-gpu", "2", "--workers", "3"], "",
                     "--workers: --workers 3 does not match 2 GPU(s) with --per-gpu 2 (4 slots)", id="mismatch"),
        pytest.param(["--in-process", "--workers", "2"], "", "--in-process: runs everything inside run.py",
                     id="in-process-slots"),
    ],
)
def test_slot_option_errors(workdir, write, args, settings, fragment):
    write("mymod.py", RECORDER)
    write("experiment.yaml", (f"Global: {{{settings}}}\n" if settings else "") + HEAD + "---\nName: a\n")
    result = run_script("run.py", *args, cwd=workdir)
    assert result.returncode == 2 and fragment in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (workdir / "log.yaml").exists()


def test_slot_layout():
    assert [(s.number, s.gpu) for s in layout(None, [], None)] == [(0, None)]
    assert [s.gpu for s in layout(None, ["0", "1"], 2)] == ["0", "1", "0", "1"]
    assert [s.gpu for s in layout(3, ["5", "7"], None)] == ["5", "7", "5"]
    assert layout(None, ["3"], None)[0].place() == {"SLOT": 0, "GPU": 3}
    assert layout(None, ["GPU-ab12"], None)[0].place() == {"SLOT": 0, "GPU": "GPU-ab12"}
    assert parse_gpus("0, 2") == ["0", "2"] and parse_gpus([1, 3]) == ["1", "3"] and parse_gpus(4) == ["4"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    with pytest.raises(UsageError, match="hides every GPU"):
        visible_gpus({"CUDA_VISIBLE_DEVICES": ""})


REPORTER = """
import os, time
def main(exp):
    exp.CUDA_VISIBLE_DEVICES = os.environ.get("CUDA_VISIBLE_DEVICES")
    time.sleep(0.3)
"""


@pytest.fixture
def fake_nvidia_smi(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text("#!/bin/sh\n[ \"$1\" = -L ] || exit 9\n"
                      "echo 'GPU 0: NVIDIA Fake A100 (UUID: GPU-0000)'\necho 'GPU 1: NVIDIA Fake A100 (UUID: GPU-1111)'\n")
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("args", "gpus"), [(["--gpus", "all"], {0, 1}), (["--gpus", "0,1", "--per-gpu", "2"], {0, 1})])
def test_gpus_from_a_fake_nvidia_smi(workdir, write, fake_nvidia_smi, args, gpus):
    write("mymod.py", REPORTER)
    write("experiment.yaml", HEAD + "".join(f"---\nName: e{i}\n" for i in range(4)))
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=workdir, env=fake_nvidia_smi,
                            capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stderr
    log = read_log(workdir / "log.yaml")
    assert all(r["GPU"] == int(r["CUDA_VISIBLE_DEVICES"]) for r in log)
    assert {r["GPU"] for r in log} == gpus
    slots = 2 if args[1] == "all" else 4
    assert {r["SLOT"] for r in log} <= set(range(slots)) and "GPU 1" in result.stdout


def test_gpus_all_without_nvidia_smi(workdir, write):
    write("mymod.py", REPORTER)
    write("experiment.yaml", HEAD + "---\nName: a\n")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = str(workdir)
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "--gpus", "all"], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--gpus all: nvidia-smi was not found on PATH" in result.stderr and "Traceback" not in result.stderr


PRINTER = """
import os, subprocess, sys
def main(exp):
    print("print from python")
    os.write(1, b"C-level write to fd 1\\n")
    os.write(2, b"C-level write to fd 2\\n")
    subprocess.run([sys.executable, "-c", "print('from a subprocess')"], check=True)
    subprocess.run(["sh", "-c", "echo 'from the shell' >&2"], check=True)
    exp.DONE = True
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_output_is_captured_from_file_descriptors(workdir, write, workers):
    write("mymod.py", PRINTER)
    write("experiment.yaml", "Global: {runs_dir: out/runs}\n" + HEAD + "---\nName: my exp/1\n---\nName: b\n")
    result = run_script("run.py", "--workers", workers, cwd=workdir)
    assert result.returncode == 0, result.stderr
    log = read_log(workdir / "log.yaml")
    first = log[0] if log[0]["Name"] == "my exp/1" else log[1]
    assert first["OUTPUT"] == f"out/runs/0-my_exp_1-{first['RND_IDX']}/output.log"
    text = (workdir / first["OUTPUT"]).read_text()
    for line in ["print from python", "C-level write to fd 1", "C-level write to fd 2", "from a subprocess",
                 "from the shell"]:
        assert line in text
        assert (line in result.stdout) == (workers == "1")  # one slot: on the terminal too
    assert "\033" not in result.stdout and "\033" not in result.stderr


SLOW = """
import os, subprocess, time
def main(exp):
    child = subprocess.Popen(["sleep", "300"])
    with open(f"pids-{exp.Name}", "w") as handle:
        handle.write(f"{os.getpid()} {child.pid}")
    time.sleep(exp.get("sleep", 300))
    exp.ACC = 1
"""


def _pids(folder: Path, names) -> list[int]:
    deadline = time.monotonic() + 60
    while not all((folder / f"pids-{name}").exists() for name in names):
        assert time.monotonic() < deadline, "the experiments never started"
        time.sleep(0.05)
    time.sleep(0.1)
    return [int(pid) for name in names for pid in (folder / f"pids-{name}").read_text().split()]


def _gone(pid: int) -> bool:
    """Dead or a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _all_gone(pids, timeout=20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not all(_gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _start(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})


@pytest.mark.timeout(90)
def test_first_ctrl_c_interrupts_the_running_ones_and_the_run_goes_on(workdir, write):
    write("mymod.py", SLOW)
    write("experiment.yaml", HEAD + "---\nName: a\n---\nName: b\n---\nName: c\nsleep: 0\n")
    process = _start(workdir, "--workers", "2")
    pids = _pids(workdir, ["a", "b"])
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    log = {r["Name"]: r["STATUS"] for r in read_log(workdir / "log.yaml")}
    assert log == {"a": "interrupted", "b": "interrupted", "c": "done"}
    assert "interrupting 2 running experiment(s)" in out and "Traceback" not in err
    assert _all_gone(pids)


@pytest.mark.timeout(90)
def test_double_ctrl_c_stops_and_leaves_no_process_behind(workdir, write):
    write("mymod.py", SLOW.replace("time.sleep(exp.get", "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                   "    time.sleep(exp.get").replace("import os,", "import os, signal,"))
    write("experiment.yaml", HEAD + "---\nName: a\n---\nName: b\n---\nName: c\n")
    process = _start(workdir, "--workers", "2")
    pids = _pids(workdir, ["a", "b"])
    process.send_signal(signal.SIGINT)
    line = ""
    while "press Ctrl-C again" not in line:
        line = process.stdout.readline()
        assert line, "run.py ended before asking"
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    log = {r["Name"]: r["STATUS"] for r in read_log(workdir / "log.yaml")}
    assert log == {"a": "interrupted", "b": "interrupted"}  # the module ignored the first Ctrl-C
    assert not (workdir / "pids-c").exists()
    assert _all_gone(pids)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["parent-killed", "sigterm"])
def test_no_process_outlives_run_py(workdir, write, how):
    write("mymod.py", SLOW)
    write("experiment.yaml", HEAD + "---\nName: a\n---\nName: b\n")
    process = _start(workdir, "--workers", "2")
    pids = _pids(workdir, ["a", "b"])
    process.send_signal(how)
    process.communicate(timeout=60)
    assert process.returncode == (-9 if how == signal.SIGKILL else 143)
    assert _all_gone(pids)
    if how == signal.SIGTERM:  # in memory nothing can be put back: logged, not lost
        assert {r["STATUS"] for r in read_log(workdir / "log.yaml")} == {"interrupted"}


@pytest.mark.timeout(120)
def test_queue_mode_with_slots_and_status(workdir, write):
    write("mymod.py", SLOW)
    write("experiment.yaml", "Global: {queue: queue.yaml}\n" + HEAD + "sleep: 0.5\n"
          + "".join(f"---\nName: e{i}\n" for i in range(5)) + "---\nName: long\nsleep: 300\n")
    process = _start(workdir, "--workers", "2")
    _pids(workdir, ["e0", "e1"])
    _pids(workdir, ["long"])
    status = run_script("run.py", "--status", "--queue", "queue.yaml", cwd=workdir)
    running = [line for line in status.stdout.splitlines() if line.strip().startswith("running")]
    assert running and all(" slot " in line for line in running), status.stdout
    assert any(line.strip().startswith("running long on ") for line in running), status.stdout
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "long put back at the front of the queue" in out
    log = read_log(workdir / "log.yaml")
    queued = [doc["Name"] for doc in read_log(workdir / "queue.yaml")]
    assert "long" in queued and sorted([r["Name"] for r in log] + queued) == sorted([f"e{i}" for i in range(5)] + ["long"])
    assert {r["SLOT"] for r in log} == {0, 1}


def test_values_that_are_not_data_fail_with_advice(workdir, write):
    write("mymod.py", RECORDER)
    write("experiment.yaml", HEAD + "---\nName: a\nfn: 'parse lambda x: x'\n---\nName: b\n")
    assert run_main(["--exp", "experiment.yaml"]) == 1
    log = read_log(workdir / "log.yaml")
    assert [r["STATUS"] for r in log] == ["failed", "done"]
    assert log[0]["ERROR"].startswith("cannot send the experiment to its worker process")
    assert "build objects in the worker with solve" in log[0]["ERROR"]


def test_solve_objects_are_built_in_the_worker(workdir, write):
    write("mymod.py", "import os\ndef main(exp):\n    exp.ROOT = exp.fn(16)\n    exp.PID = os.getpid()\n")
    write("experiment.yaml", HEAD + "---\nName: a\nfn: solve math.sqrt\n")
    assert run_main(["--exp", "experiment.yaml", "--isolate"]) == 0
    (record,) = read_log(workdir / "log.yaml")
    assert record["ROOT"] == 4.0 and record["fn"] == "solve math.sqrt" and record["PID"] != os.getpid()


def test_dry_shows_dependencies_and_a_possible_order(workdir, write, capsys):
    write("mymod.py", RECORDER)
    write("experiment.yaml", CHAIN)
    assert run_main(["--exp", "experiment.yaml", "--dry"]) == 0
    out = capsys.readouterr().out
    assert "[1] c2  (after 0)" in out and "[2] c3  (after 1)" in out
    assert "  wave 1: 0 c1; 3 free0; 4 free1; 5 free2; 6 free3" in out
    assert "  wave 2: 1 c2 after 0" in out and "  wave 3: 2 c3 after 1" in out
    assert not (workdir / "runs").exists()


def test_in_process_runs_inside_run_py(workdir, write):
    write("mymod.py", RECORDER)
    write("experiment.yaml", HEAD + "---\nName: a\n")
    assert run_main(["--exp", "experiment.yaml", "--in-process"]) == 0
    (record,) = read_log(workdir / "log.yaml")
    assert record["PID"] == os.getpid() and "OUTPUT" not in record


@pytest.mark.timeout(300)
def test_training_smoke_run_with_two_workers(tmp_path):
    pytest.importorskip("torch")
    smoke = ["+dataset=synthetic", "+synthetic={train_size: 64, test_size: 16}", "+epochs=1", "+steps_per_epoch=1",
             "+eval_batches=1", "+batch_size=8", "+model=resnet20", "--device", "cpu"]
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "--exp", str(ROOT / "studies" / "experiment-resnet.yaml"),
                             *smoke, "--pick", "0", "1", "2", "9", "--workers", "2"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=280,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    records = {r["INDEX"]: r for r in read_log(tmp_path / "logs" / "resnet.yaml")}
    assert sorted(records) == [0, 1, 2, 9] and all(r["STATUS"] == "done" for r in records.values())
    assert records[1]["After"] == [0] and records[2]["After"] == [1] and records[9]["After"] == [0, 8]
    assert records[2]["LOADED_FROM"] == records[1]["save_model"][1]
    assert records[9]["REWOUND_FROM"] == records[0]["save_model"][0]
    assert {r["SLOT"] for r in records.values()} <= {0, 1}
    assert all((tmp_path / r["OUTPUT"]).exists() for r in records.values())
