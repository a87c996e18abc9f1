"""Sending a study to Slurm from the run session: check, plan, fill the queue or submit, and say what next."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from ..console import Console
from ..errors import UsageError
from ..study.expand import Experiment
from ..study.load import StudyFile, load_study
from .importing import find_module, importable


def submit_to_slurm(study: StudyFile, experiments: list[Experiment], paths: list[str], options: object,
                    console: Console) -> int:
    """`run.py --launcher slurm`: submit and return at once (or, with --dry, show what would be submitted)."""
    from .session import dry_run
    from .slurm import (
        dependencies_of,
        describe_plan,
        folder_of,
        launch_study,
        launch_workers,
        require_slurm,
        settings_of,
    )
    from .slurm_job import JobSpec

    settings = settings_of(study.settings.get("slurm"), study.path)
    depends = dependencies_of(experiments)
    queue_path = getattr(options, "queue", None) or study.settings["queue"]
    workers = getattr(options, "workers", None)
    if getattr(options, "dry", False):
        dry_run(experiments, paths, console)
        if queue_path:
            console.print(f"Slurm submission: {workers or 1} queue worker job(s) taking from {queue_path}")
        else:
            for line in describe_plan(experiments, depends, settings):
                console.print(line)
        return 0
    require_slurm()
    with importable(paths):  # a typo in a Module fails here, not in every job
        for module in sorted({e.values["Module"] for e in experiments if not e.skipped}):
            find_module(module)
    slack = None
    if study.settings.get("slack"):
        from .notify import slack_settings

        slack_settings(study.settings, study.path)  # a missing token fails now, not in the last job
        slack = {"slack": True, "slack_config": study.settings.get("slack_config") or {}}
    folder = folder_of(settings, study.path)
    spec = JobSpec(study=os.path.abspath(study.path), folder=folder, paths=paths,
                   argv=list(getattr(options, "argv", ())), cwd=os.getcwd(),
                   metadata=study.settings.get("metadata", True) is not False)
    if queue_path:
        from ..queue.filequeue import FileQueue

        FileQueue(queue_path).fill(experiments, study, fresh=getattr(options, "fresh", False), paths=paths)
        launch = launch_workers(workers or 1, settings, spec, os.path.abspath(queue_path))
        console.print(f"submitted {len(launch.workers)} queue worker job(s): {', '.join(launch.workers)}")
    else:
        if workers:
            raise UsageError("--workers with --launcher slurm needs a queue", option="--workers",
                             hint="set Global.queue (or --queue FILE); without one every experiment is its own job")
        launch = launch_study(experiments, depends, settings, spec, slack, console)
        console.print(f"submitted {len(launch.jobs)} experiment job(s) to Slurm: "
                      + ", ".join(f"{i}={job}" for i, job in launch.jobs.items()))
        if launch.summary:
            console.print(f"the Slack summary follows as job {launch.summary}")
    again = " ".join(shlex.quote(a) for a in ["--exp", study.path, *getattr(options, "overrides", ())]
                     if not a.startswith("+") or a.startswith("+Global."))
    console.print(f"follow it with: run.py --status {again}   (cancel: run.py --cancel {again})")
    return 0


def slurm_folder(experiment_file: str, overrides: Sequence[str] = ()) -> str | None:
    """The Slurm folder of a study submitted with the Slurm launcher, or None for a local study."""
    from .slurm import MANIFEST, folder_of, settings_of

    study = load_study(experiment_file, overrides)
    settings = settings_of(study.settings.get("slurm"), study.path)
    folder = folder_of(settings, study.path)
    if study.settings["launcher"] == "slurm" or (folder / MANIFEST).exists():
        return str(folder)
    return None
