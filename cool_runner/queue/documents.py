"""Queue documents as experiments: written compactly with ids, completed from the defaults when taken."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..study.expand import Expander, Experiment, merge
from ..study.expressions import PARSE
from ..study.load import StudyFile
from ..study.mapping import History
from ..yamlio import dump, load_all, to_plain
from .state import TAKEN, QueueState
from .text import Cut, marker


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


def render(docs: Sequence[dict[str, Any]], make_id: Callable[[], str]) -> str:
    """Queue documents, each under a `---` line with a new id."""
    return "".join(marker(make_id()) + dump(doc) for doc in docs)


class Completer:
    """Turns queue documents into experiments for one worker: defaults, Grid and Repeat copies, REP, RND_IDX,
    HOST, IDENTITY and `parse`.

    `E` is every experiment taken from the queue so far, by any worker, as the journal lists them; it is
    built only when a `parse` value could use it.
    """

    def __init__(self, queue_path: Path, host: str) -> None:
        self.queue_path = queue_path
        self.host = host
        self.history = History()
        self.version = -1
        self.count = 0
        self.expander: Expander | None = None
        self.config = ""
        self.defaults: dict[str, Any] = {}
        self.defaults_parse = False

    def complete(self, doc: Any, cut: Cut, state: QueueState, make_id: Callable[[], str]) -> Experiment | None:
        """The experiment a document stands for; None for `Repeat: 0`, which asks for no copies.

        A document that is not a copy yet (it has no REP) is expanded like a definition of the experiment file
        (`Expander.variants`, Grid points and Repeat copies): the first copy is returned, the others become new
        documents in its place (`cut.extra`), and `cut.back` is what to put back if the experiment must run
        again: the first copy, so that the others are not made twice.
        """
        line = cut.line + 1
        if not isinstance(doc, dict):
            raise ConfigError(f"a queue document must be a mapping, not a {type(doc).__name__}",
                              file=str(self.queue_path), line=line)
        expander = self._expander(state)
        if "REP" not in doc:  # not a copy yet: Grid points and Repeat copies, as for the experiment file
            copies = expander.variants(doc, line)
            if not copies:
                return None
            doc = copies[0].document()
            if len(copies) > 1:
                cut.extra = render([copy.document() for copy in copies[1:]], make_id).encode("utf-8")
                cut.back = marker(cut.id or make_id()) + dump(doc)
        # Documents from an experiment file keep their INDEX; documents added by hand are numbered after them.
        index = doc.get("INDEX")
        if isinstance(index, bool) or not isinstance(index, int):
            index = max(state.next_index, state.counts.get(TAKEN, 0))
        history = self._history(state) if self.defaults_parse or PARSE in cut.raw else History()
        experiment = expander.resolve(doc, history, index, rep=doc.get("REP", 0), rnd_idx=doc.get("RND_IDX"),
                                      global_rep=doc.get("GLOBAL_REP", 0))
        expander.identify([experiment])
        experiment.values["HOST"] = self.host
        experiment.line = line
        return experiment

    def remember(self, experiment: Experiment) -> Any:
        """The experiment as `E` shows it to later ones: what differs from the defaults, as JSON data (several
        times cheaper than YAML), or as YAML text when JSON cannot hold it (keys that are not strings)."""
        diff = difference(to_plain(experiment.values), self.defaults)
        return diff if _json_safe(diff) else dump(diff, explicit_start=True)

    def _expander(self, state: QueueState) -> Expander:
        if self.expander is None or self.config != state.config:
            config = (load_all(state.config, f"{self.queue_path}.state")[0] or {}) if state.config else {}
            self.defaults = config.get("defaults") or {}
            study = StudyFile(path=str(self.queue_path), defaults=self.defaults,
                              settings=config.get("settings") or {}, definitions=[])
            self.expander = Expander(study, host=self.host)
            self.config = state.config
            self.defaults_parse = PARSE in state.config
            self.version = -1
        return self.expander

    def _history(self, state: QueueState) -> History:
        """`E`, brought up to date with the journal (rebuilt when an experiment was put back)."""
        if state.history_version != self.version or len(state.history) < self.count:
            self.history, self.count, self.version = History(), 0, state.history_version
        for _, kept in state.history[self.count:]:
            doc = kept if isinstance(kept, dict) else load_all(kept, f"{self.queue_path}.state")[0]
            self.history.append(merge(doc or {}, self.defaults))
        self.count = len(state.history)
        return self.history


def _json_safe(value: Any) -> bool:
    """Whether JSON keeps this plain data as it is (it would turn the key 1 into "1")."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and _json_safe(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_json_safe(item) for item in value)
    return True
