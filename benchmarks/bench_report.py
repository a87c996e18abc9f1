#!/usr/bin/env python3
"""Time plots and the HTML report of N records (in memory), and filter.py making them from a log file."""

from __future__ import annotations

import argparse
import logging
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cool_runner.logs.plot import figure_bytes, make_figure  # noqa: E402
from cool_runner.logs.query import load_records  # noqa: E402
from cool_runner.logs.report import html_report  # noqa: E402

Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def records(count: int, epochs: int) -> list[dict]:
    """A large study: 20 configurations x 10 sparsities, repeats, a learning curve each, 2% failures."""
    rng = random.Random(0)
    out = []
    for i in range(count):
        sparsity = round(i // 20 % 10 / 10, 1)
        record = {"Name": f"config-{i % 20:02d}", "sparsity": sparsity, "optimizer": {"lr": 0.1, "momentum": 0.9},
                  "REP": i // 200, "RND_IDX": 100000 + i, "HOST": f"gpu-{i % 7}",
                  "ACC": round(0.9 - 0.2 * sparsity + rng.gauss(0, 0.01), 4),
                  "LOSS_HISTORY": [round(1 / (e + 1) + rng.random() / 10, 4) for e in range(epochs)],
                  "TIME_STARTED": f"2026-11-{1 + i * 28 // count:02d}T12:00:00+01:00",
                  "TIME_ELAPSED": round(rng.random() * 900, 3), "STATUS": "done"}
        if rng.random() < 0.02:
            record.update(STATUS="failed", ERROR="RuntimeError: CUDA out of memory",
                          TRACEBACK="Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory\n")
            del record["ACC"], record["LOSS_HISTORY"]
        out.append(record)
    return out


def median_time(function, repeats: int) -> tuple[str, object]:
    """Median wall-clock and CPU time: the CPU time shows what a busy shared machine adds to the wall clock."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return f"{statistics.median(walls):.2f} s (CPU {statistics.median(cpus):.2f} s)", result


def in_browser(page: Path) -> None:
    """Open the report in headless Chromium, if it is installed: load, sort by a column, filter by text."""
    import shutil

    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print("browser: selenium is not installed, skipped")
        return
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        print("browser: chromium or chromedriver is not installed, skipped")
        return
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    with tempfile.TemporaryDirectory() as profile:
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            start = time.perf_counter()
            driver.get(page.as_uri())
            loaded = time.perf_counter() - start
            start = time.perf_counter()
            driver.execute_script("document.querySelector('#records th:nth-child(8)').click()")
            sorted_in = time.perf_counter() - start
            start = time.perf_counter()
            driver.execute_script("document.querySelector('#records .datatable').table.filter('config-03 gpu-2')")
            filtered = time.perf_counter() - start
            shown = driver.execute_script("return document.querySelector('#records .count').textContent")
        finally:
            driver.quit()
    print(f"browser: the report opens in headless Chromium in {loaded:.2f} s; sorting every row by ACC takes "
          f"{sorted_in:.2f} s, the first text filter {filtered:.2f} s ({shown})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=100_000, help="records (default 100,000)")
    parser.add_argument("--epochs", type=int, default=20, help="length of each learning curve (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each in-memory measurement (median)")
    parser.add_argument("--no-cli", action="store_true", help="skip the filter.py runs (they parse the YAML log)")
    args = parser.parse_args()
    logging.getLogger("cool_runner").setLevel(logging.ERROR)  # the failed runs left out of each plot, every time
    data = records(args.n, args.epochs)
    group = {"group_by": ["Name"]}
    n = f"{args.n:,}"

    make_figure(data[:10], "ACC")  # import matplotlib once, outside the measurements
    scalar, png = median_time(lambda: figure_bytes(make_figure(data, "ACC", x="sparsity", **group), "png"),
                              args.repeats)
    print(f"plot ACC against sparsity, 20 groups, {n} records, PNG: {scalar} ({len(png) / 1e3:.0f} kB)")
    curves, png = median_time(lambda: figure_bytes(make_figure(data, "LOSS_HISTORY", **group), "png"),
                              args.repeats)
    print(f"plot {args.epochs}-epoch LOSS_HISTORY curves, 20 groups, {n} records "
          f"({args.n * args.epochs:,} points), PNG: {curves}")
    report, page = median_time(lambda: html_report(data, plot="ACC", x="sparsity", **group, agg=["ACC"]),
                               args.repeats)
    print(f"HTML report with that plot, the groups and every record, {n} records: {report} "
          f"({len(page.encode()) / 1e6:.1f} MB)")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "report.html").write_text(page, encoding="utf-8")
        in_browser(Path(tmp) / "report.html")
    if args.no_cli:
        return
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "big.yaml"
        log.write_text(yaml.dump_all(data, Dumper=Dumper, sort_keys=False, explicit_start=True))
        loading, _ = median_time(lambda: load_records([str(log)]), 1)
        print(f"reading that log ({log.stat().st_size / 1e6:.0f} MB of YAML) alone, as filter.py does: {loading}")
        for label, extra in (("--plot ACC --x sparsity (png)", ["--plot", "ACC", "--x", "sparsity"]),
                             ("--format html --plot ACC --x sparsity", ["--format", "html", "--plot", "ACC", "--x",
                                                                       "sparsity"])):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([sys.executable, str(ROOT / "filter.py"), str(log), *extra, "--group-by", "Name",
                            "--dest", str(Path(tmp) / "out")], check=True, capture_output=True)
            total = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            print(f"filter.py LOG {label} --group-by Name, whole command: {total:.2f} s (CPU {cpu:.2f} s)")


if __name__ == "__main__":
    main()
