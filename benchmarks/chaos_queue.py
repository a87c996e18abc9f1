#!/usr/bin/env python3
"""Chaos rounds for the queue file: real worker processes killed and restarted every few hundred ms, an appender
using --add, and an editor saving the queue by rename and by truncate-and-write (also slowly). At the end every
experiment must have exactly one record (`done`, or `interrupted` after Ctrl-C, never both, never two), nothing
may be left running, and no temporary file may remain.

    python benchmarks/chaos_queue.py --rounds 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cool_runner import Expander, load_study  # noqa: E402
from cool_runner.queue.filequeue import FileQueue  # noqa: E402

MODULE = """\
import json, os, time
def main(exp):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ran.jsonl"), "a") as handle:
        handle.write(json.dumps({"Name": exp.Name, "pid": os.getpid()}) + "\\n")
    time.sleep(exp.get("work", 0.02))
    exp.OK = 1
"""

#: Starts a worker with the default handling of the signals sent here, even when this script runs under nohup or
#: in the background (the worker would rightly keep ignoring what it inherited as ignored).
DEFAULT_SIGNALS = ("import os, signal, sys\n"
                   "for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):\n"
                   "    signal.signal(signum, signal.SIG_DFL)\n"
                   "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n")

#: The signal each kind of round sends; "mixed" picks one of the four each time.
KINDS = {"kill": [signal.SIGKILL], "term": [signal.SIGTERM], "int": [signal.SIGINT], "hup": [signal.SIGHUP],
         "mixed": [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP]}


@dataclass
class RoundResult:
    """What one round left behind."""

    kind: str
    expected: int = 0
    done: int = 0
    interrupted: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    running_left: int = 0
    pending_left: int = 0
    temporary_files: list[str] = field(default_factory=list)
    log_valid: bool = True
    signals: int = 0
    workers_started: int = 0
    saves: Counter = field(default_factory=Counter)
    added: int = 0
    typed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.lost and not self.duplicated and not self.unexpected and not self.running_left
                and not self.pending_left and not self.temporary_files and self.log_valid)

    def line(self) -> str:
        saves = ", ".join(f"{count} {mode}" for mode, count in sorted(self.saves.items())) or "none"
        return (f"{self.kind:5s} {self.seconds:5.1f} s: {self.expected} experiments ({self.added} added, "
                f"{self.typed} typed), {self.done} done + {self.interrupted} interrupted; {len(self.lost)} lost, "
                f"{len(self.duplicated)} duplicated, {self.running_left} running, {self.pending_left} pending, "
                f"{len(self.temporary_files)} temporary files; {self.signals} signals, {self.workers_started} "
                f"workers; editor saves: {saves}")


class Chaos:
    """One round in one folder."""

    def __init__(self, folder: Path, seed: int, kind: str, experiments: int, workers: int, interval: float,
                 duration: float) -> None:
        self.folder = folder
        self.rng = random.Random(seed)
        self.kind = kind
        self.count = experiments
        self.workers = workers
        self.interval = interval
        self.duration = duration
        self.queue = folder / "queue.yaml"
        self.result = RoundResult(kind)
        self.stop = threading.Event()
        self.names: list[str] = []
        self.lock = threading.Lock()
        self.processes: list[subprocess.Popen] = []
        self.env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}

    # --- the actors --------------------------------------------------------------------------------------

    def start_worker(self) -> subprocess.Popen:
        index = self.result.workers_started
        self.result.workers_started += 1
        with open(self.folder / f"worker-{index}.out", "wb") as out:
            process = subprocess.Popen([sys.executable, "-c", DEFAULT_SIGNALS, str(ROOT / "run.py"), "--resume",
                                        "--queue", "queue.yaml"],
                                       cwd=self.folder, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        self.processes.append(process)
        return process

    def appender(self) -> None:
        batch = 0
        while not self.stop.wait(self.rng.uniform(0.3, 0.8)):
            names = [f"add-{batch}-{i}" for i in range(self.rng.randint(1, 3))]
            more = self.folder / f"more-{batch}.yaml"
            more.write_text("".join(f"---\nName: {name}\n" for name in names), encoding="utf-8")
            batch += 1
            done = subprocess.run([sys.executable, str(ROOT / "run.py"), "--queue", "queue.yaml", "--add", more.name],
                                  cwd=self.folder, env=self.env, capture_output=True, timeout=120)
            if done.returncode == 0:
                with self.lock:
                    self.names += names
                    self.result.added += len(names)

    def editor(self) -> None:
        """Saves the queue like an editor whose user looks at it for a moment and perhaps types a document.

        Like vim, nano or VS Code, it notices when the file changed on disk since it was loaded and reloads
        instead of overwriting new documents. Documents that were only taken meanwhile are still in its buffer:
        saving them is the "save spanning a take" that the queue must drop by id.
        """
        typed = 0
        while not self.stop.wait(self.rng.uniform(0.3, 1.0)):
            try:
                buffer = self.queue.read_bytes()
            except FileNotFoundError:
                continue
            time.sleep(self.rng.uniform(0.0, 0.2))
            try:
                current = self.queue.read_bytes()
                loaded = os.stat(self.queue)
            except FileNotFoundError:
                continue
            if not _markers(current) <= _markers(buffer):
                buffer = current  # something new appeared: reload, as an editor asks to
            text = buffer
            name = None
            if self.rng.random() < 0.3:
                name = f"typed-{typed}"
                typed += 1
                text = buffer.rstrip(b"\n") + (b"\n" if buffer.strip() else b"") + f"---\nName: {name}\n".encode()
            mode = self.rng.choice(["rename", "truncate", "slow"])
            if not self._save(text, mode, loaded):
                continue
            self.result.saves[mode] += 1
            if name:
                with self.lock:
                    self.names.append(name)
                    self.result.typed += 1

    def _save(self, text: bytes, mode: str, loaded: os.stat_result) -> bool:
        """Save unless the file changed on disk since it was loaded (an editor would ask first). The check comes
        right before the file is replaced or emptied, as in vim, nano and VS Code: the few microseconds between
        the two are the editor's own window, in which a worker's change is overwritten (README, "What is left")."""
        tmp = self.folder / "queue.yaml.editor~"
        if mode == "rename":  # vim, sed -i: a new file renamed over the old one
            tmp.write_bytes(text)
        now = os.stat(self.queue)
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (loaded.st_ino, loaded.st_size, loaded.st_mtime_ns):
            tmp.unlink(missing_ok=True)
            return False
        if mode == "rename":
            os.replace(tmp, self.queue)
        else:  # nano, VS Code: empty the file, then write it; the slow one pauses in between
            with open(self.queue, "wb") as handle:
                if mode == "slow":
                    handle.flush()
                    time.sleep(self.rng.uniform(0.1, 0.25))
                handle.write(text)
        return True

    # --- the round ---------------------------------------------------------------------------------------

    def run(self) -> RoundResult:
        started = time.monotonic()
        (self.folder / "chaosmod.py").write_text(MODULE, encoding="utf-8")
        names = [f"exp-{i}" for i in range(self.count)]
        self.names += names
        docs = "".join(f"---\nName: {name}\nwork: {self.rng.uniform(0.02, 0.2):.3f}\n" for name in names)
        (self.folder / "experiment.yaml").write_text(
            "Global: {queue: queue.yaml}\nModule: chaosmod\nYamlLog: log.yaml\n" + docs, encoding="utf-8")
        study = load_study(str(self.folder / "experiment.yaml"))
        FileQueue(self.queue).fill(Expander(study).expand(), study, paths=[str(self.folder)])
        for _ in range(self.workers):
            self.start_worker()
        actors = [threading.Thread(target=self.appender), threading.Thread(target=self.editor)]
        for actor in actors:
            actor.start()
        try:
            self._signal_workers(started)
        finally:
            self.stop.set()
            for actor in actors:
                actor.join(120)
        for process in self.processes:
            process.wait(120)
        for _ in range(5):  # whatever is left (dead workers' experiments, late additions) runs now
            subprocess.run([sys.executable, str(ROOT / "run.py"), "--resume", "--queue", "queue.yaml"],
                           cwd=self.folder, env=self.env, capture_output=True, timeout=300)
            status = FileQueue(self.queue).status()
            if not status["pending"] and not status["running"]:
                break
        self._account()
        self.result.seconds = time.monotonic() - started
        return self.result

    def _signal_workers(self, started: float) -> None:
        """Signal a random worker every few hundred ms and keep `workers` running, until the queue is drained
        (or `duration` is over)."""
        watcher = FileQueue(self.queue)
        empty_since = None
        while time.monotonic() - started < self.duration:
            time.sleep(self.rng.uniform(0.5, 1.5) * self.interval)
            alive = [p for p in self.processes if p.poll() is None]
            if alive:
                victim = self.rng.choice(alive)
                try:
                    victim.send_signal(self.rng.choice(KINDS[self.kind]))
                    self.result.signals += 1
                except ProcessLookupError:
                    pass
            pending = watcher.pending()  # the editor may have emptied the file for a moment: look twice
            if pending:
                empty_since = None
            elif empty_since is None:
                empty_since = time.monotonic()
            elif time.monotonic() - empty_since > 1.0:
                return
            while sum(p.poll() is None for p in self.processes) < self.workers:
                self.start_worker()

    def _account(self) -> None:
        result = self.result
        status = FileQueue(self.queue).status()
        result.running_left, result.pending_left = len(status["running"]), status["pending"]
        result.temporary_files = sorted(p.name for p in self.folder.glob(".queue.yaml*.tmp"))
        try:
            records = [r for r in yaml.safe_load_all((self.folder / "log.yaml").read_text(encoding="utf-8")) if r]
        except yaml.YAMLError:
            result.log_valid = False
            records = []
        statuses: dict[str, list[str]] = {}
        for record in records:
            statuses.setdefault(record.get("Name"), []).append(record.get("STATUS"))
        expected = set(self.names)
        result.expected = len(expected)
        for name in sorted(expected):
            got = statuses.get(name, [])
            if not got:
                result.lost.append(name)
            elif len(got) > 1:
                result.duplicated.append(f"{name}: {', '.join(map(str, got))}")
            elif got[0] == "interrupted":
                result.interrupted += 1
            elif got[0] == "done":
                result.done += 1
            else:
                result.unexpected.append(f"{name}: {got[0]}")
        result.unexpected += sorted(str(name) for name in statuses if name not in expected)


def _markers(data: bytes) -> set[bytes]:
    """The `---` lines of a queue (with their ids): what an editor compares to notice new documents."""
    return {line for line in data.splitlines() if line.startswith(b"---")}


def run_rounds(rounds: int, *, experiments: int, workers: int, interval: float, duration: float, seed: int,
               kinds: list[str], keep: Path | None = None, show=print) -> list[RoundResult]:
    results = []
    for number in range(rounds):
        kind = kinds[number % len(kinds)]
        with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
            folder = Path(tmp)
            result = Chaos(folder, seed + number, kind, experiments, workers, interval, duration).run()
            if not result.ok and keep is not None:
                target = keep / f"round-{number}"
                subprocess.run(["cp", "-r", str(folder), str(target)], check=False)
        show(f"round {number + 1:2d} {result.line()}")
        for problem in (*result.lost, *result.duplicated, *result.unexpected, *result.temporary_files):
            show(f"    {problem}")
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("-n", "--experiments", type=int, default=150, help="experiments per round (default 150)")
    parser.add_argument("--workers", type=int, default=4, help="workers kept running (default 4)")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between signals, about (default 0.3)")
    parser.add_argument("--duration", type=float, default=40.0,
                        help="at most this many seconds of chaos per round; it ends once the queue is drained")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the first round")
    parser.add_argument("--kinds", default="kill,term,int,hup,mixed",
                        help="signals, cycled over the rounds (default kill,term,int,hup,mixed)")
    parser.add_argument("--keep", type=Path, help="copy the folders of failed rounds here")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    results = run_rounds(args.rounds, experiments=args.experiments, workers=args.workers, interval=args.interval,
                         duration=args.duration, seed=args.seed, kinds=kinds, keep=args.keep)
    print(json.dumps({
        "rounds": len(results), "experiments": sum(r.expected for r in results),
        "done": sum(r.done for r in results), "interrupted": sum(r.interrupted for r in results),
        "lost": sum(len(r.lost) for r in results), "duplicated": sum(len(r.duplicated) for r in results),
        "left_running": sum(r.running_left for r in results), "temporary_files": sum(len(r.temporary_files)
                                                                                    for r in results),
        "signals": sum(r.signals for r in results), "editor_saves": sum(sum(r.saves.values()) for r in results),
        "failed_rounds": sum(not r.ok for r in results)}))
    sys.exit(0 if all(r.ok for r in results) else 1)


if __name__ == "__main__":
    main()
