"""Queue documents as experiments: written compactly, completed from the defaults when taken."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..study.expand import Expander, Experiment
from ..study.load import StudyFile
from ..study.mapping import History
from ..yamlio import dump_all, load_all
from .state import TAKEN, State
from .text import Cut


def difference(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The keys of a resolved experiment whose values differ from the raw default config (deeply).

    Merging the result with the defaults gives the experiment back, so the queue stays small and shows each
    experiment as what makes it special.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in defaults:
            out[key] = value
            continue
        base = defaults[key]
        if isinstance(value, dict) and isinstance(base, dict):
            nested = difference(value, base)
            if nested:
                out[key] = nested
        elif value != base or type(value) is not type(base):
            out[key] = value
    return out


class Completer:
    """Turns queue documents into experiments for one worker: defaults, Grid and Repeat copies, REP, RND_IDX,
    HOST, IDENTITY and `parse`.

    `E` is every experiment taken from the queue so far, by any worker, read incrementally from the
    append-only `.taken` file.
    """

    def __init__(self, queue_path: Path, taken_path: Path, host: str) -> None:
        self.queue_path = queue_path
        self.taken_path = taken_path
        self.host = host
        self.history = History()
        self.offset = 0
        self.expander: Expander | None = None
        self.config = ""
        self.next_index = 0

    def complete(self, doc: Any, cut: Cut, state: State) -> Experiment | None:
        """The experiment a document stands for; None for `Repeat: 0`, which asks for no copies.

        A document that is not a copy yet (it has no REP) is expanded like a definition of the experiment file
        (`Expander.variants`): the first copy is returned and the others go back to the front of the queue.
        """
        line = cut.line + 1
        if not isinstance(doc, dict):
            raise ConfigError(f"a queue document must be a mapping, not a {type(doc).__name__}",
                              file=str(self.queue_path), line=line)
        expander = self._expander(state)
        self._catch_up()
        if "REP" not in doc:  # not a copy yet: Grid points and Repeat copies, as for the experiment file
            copies = expander.variants(doc, line)
            if not copies:
                return None
            if len(copies) > 1:
                cut.extra = dump_all([copy.document() for copy in copies[1:]]).encode("utf-8")
            doc = copies[0].document()
        # Documents from an experiment file keep their INDEX; documents added by hand are numbered after them.
        index = doc.get("INDEX")
        if isinstance(index, bool) or not isinstance(index, int):
            index = max(self.next_index, state.counts.get(TAKEN, 0))
        experiment = expander.resolve(doc, self.history, index, rep=doc.get("REP", 0), rnd_idx=doc.get("RND_IDX"),
                                      global_rep=doc.get("GLOBAL_REP", 0))
        expander.identify([experiment])
        experiment.values["HOST"] = self.host
        experiment.line = line
        return experiment

    def _expander(self, state: State) -> Expander:
        if self.expander is None or self.config != state.config:
            config = load_all(state.config, f"{self.queue_path}.state")[0] if state.config else {}
            study = StudyFile(path=str(self.queue_path), defaults=config.get("defaults") or {},
                              settings=config.get("settings") or {}, definitions=[])
            self.expander = Expander(study, host=self.host)
            self.config = state.config
        return self.expander

    def _catch_up(self) -> None:
        """Read what was taken since we last looked; the caller holds the queue's lock, so it is complete."""
        try:
            with open(self.taken_path, "rb") as handle:
                if os.fstat(handle.fileno()).st_size < self.offset:  # the queue was refilled
                    self.history, self.offset, self.next_index = History(), 0, 0
                handle.seek(self.offset)
                new = handle.read()
        except FileNotFoundError:
            return
        for doc in load_all(new.decode("utf-8"), str(self.taken_path)):
            if isinstance(doc, dict):
                self.history.append(doc)
                if isinstance(doc.get("INDEX"), int):
                    self.next_index = max(self.next_index, doc["INDEX"] + 1)
        self.offset += len(new)
