"""Slack notifications: a thread per run, a reply per experiment, a summary at the end; never in the way."""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable
from urllib.error import URLError

from ..errors import ConfigError
from ..keys import RUNNER_KEYS, Status
from ..study.mapping import FrozenView
from .runner import Listener, Outcome, Summary

log = logging.getLogger("cool_runner")

DEFAULT_BASE_URL = "https://slack.com/api/"
SETTINGS = ("channel_short", "channel_final", "say", "base_url", "token_env", "token", "timeout")
SKIP_IN_LINE = RUNNER_KEYS


@dataclass
class SlackSettings:
    """Where and how to post, checked before any experiment runs."""

    token: str
    channel_short: str | None = None
    channel_final: str | None = None
    say: str | None = None
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0


def slack_settings(settings: Mapping[str, Any], file: str,
                   environ: Mapping[str, str] | None = None) -> SlackSettings | None:
    """Read Global.slack and Global.slack_config; None when Slack is off. Problems are ConfigErrors."""
    if not settings.get("slack"):
        return None
    environ = os.environ if environ is None else environ
    config = settings.get("slack_config") or {}

    def error(what: str, key: str, hint: str | None = None) -> ConfigError:
        return ConfigError(what, file=file, key=("Global", "slack_config", key) if key else ("Global", "slack"),
                           hint=hint)

    if not isinstance(config, Mapping):
        raise error("slack_config must be a mapping", "")
    unknown = sorted(set(config) - set(SETTINGS))
    if unknown:
        raise error(f"unknown setting {unknown[0]!r}", unknown[0], "slack_config knows " + ", ".join(SETTINGS))
    try:
        import slack_sdk  # noqa: F401
    except ImportError as exc:
        raise error("Slack is enabled but slack_sdk is not installed", "",
                    "pip install -e '.[slack]' (or set Global.slack: false)") from exc
    variable = config.get("token_env") or "SLACK_BOT_TOKEN"
    token = environ.get(variable)
    if config.get("token"):
        log.warning("%s: the Slack token is written in the experiment file; files get shared and copied, so put it "
                    "in the %s environment variable instead", file, variable)
        token = token or str(config["token"])
    if not token:
        raise error(f"no Slack token: the environment variable {variable} is not set", "token_env",
                    f"export {variable}=xoxb-... (a bot token, see the README's Slack section)")
    if not config.get("channel_short") and not config.get("channel_final"):
        raise error("no channel to post to", "channel_short", "set channel_short and/or channel_final")
    say = config.get("say")
    if say is not None:
        try:
            compile(str(say), "say", "eval")
        except SyntaxError as exc:
            raise error(f"say is not a Python expression: {exc.msg}", "say",
                        "e.g. say: f\"{exp.Name}: {exp.get('ACC')}\"") from exc
    base_url = str(config.get("base_url") or DEFAULT_BASE_URL)
    return SlackSettings(token=token, channel_short=config.get("channel_short"),
                         channel_final=config.get("channel_final"), say=say,
                         base_url=base_url if base_url.endswith("/") else base_url + "/",
                         timeout=float(config.get("timeout") or 10.0))


def default_line(record: Mapping[str, Any]) -> str:
    """`vgg-a (RND_IDX 123456) done in 12.3 s: ACC=0.93 LOSS=0.2`."""
    results = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                       if isinstance(k, str) and k.isupper() and k not in SKIP_IN_LINE
                       and isinstance(v, (int, float, str)) and len(str(v)) <= 40)
    line = f"{record.get('Name', '(unnamed)')} (RND_IDX {record.get('RND_IDX')}) {record.get('STATUS')}"
    line += f" in {record.get('TIME_ELAPSED', 0):.1f} s"
    return f"{line}: {results}" if results else line


def _undelivered(error: Exception) -> bool:
    """Whether a failed request certainly never reached Slack (so sending it again cannot post it twice)."""
    reason = getattr(error, "reason", error)
    return isinstance(reason, (ConnectionRefusedError, socket.gaierror))


class SlackNotifier(Listener):
    """Posts from a background thread, so a slow or broken Slack never holds the experiments back."""

    def __init__(self, settings: SlackSettings, *, host: str, desc: Any = None, warn: Callable[[str], None],
                 flush_timeout: float = 10.0) -> None:
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

        class _UndeliveredRetry(ConnectionErrorRetryHandler):
            # Retry only when the request cannot have reached Slack, so that no message is posted twice.
            def _can_retry(self, *, state, request, response=None, error=None):  # type: ignore[no-untyped-def]
                return isinstance(error, URLError) and _undelivered(error) and \
                    super()._can_retry(state=state, request=request, response=response, error=error)

        self.settings = settings
        self.client = WebClient(token=settings.token, base_url=settings.base_url, timeout=int(settings.timeout),
                                retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3),
                                                _UndeliveredRetry(max_retry_count=1)])
        self.host = host
        self.desc = desc
        self.warn = warn
        self.flush_timeout = flush_timeout
        self.messages: queue.Queue[tuple[str, str | None, str] | None] = queue.Queue()
        self.thread_ts: str | None = None
        self.reported: set[str] = set()
        self.failed = 0
        self.sender = threading.Thread(target=self._send_all, name="cool-runner-slack", daemon=True)
        self.sender.start()

    # --- what to say -------------------------------------------------------------------------------------

    def started(self) -> None:
        if self.settings.channel_short:
            text = f"experiments on {self.host} started"
            if self.desc:
                text += f": {self.desc}"
            self.messages.put(("parent", self.settings.channel_short, text))

    def finished(self, outcome: Outcome) -> None:
        if not self.settings.channel_short or outcome.status == Status.SKIPPED:
            return
        line = self.line(outcome.record)
        if outcome.status == Status.FAILED and outcome.error:
            line = f":x: {line}\n> {outcome.error.strip().splitlines()[-1]}"
        self.messages.put(("reply", self.settings.channel_short, line))

    def line(self, record: Mapping[str, Any]) -> str:
        if self.settings.say:
            try:
                return str(eval(self.settings.say, {"__builtins__": __builtins__}, {"exp": FrozenView(record)}))
            except Exception as exc:
                self._report(f"say: {type(exc).__name__}: {exc}", "say failed; using the default line")
        return default_line(record)

    def ended(self, summary: Summary) -> None:
        if summary.stopped and self.settings.channel_short:
            self.messages.put(("reply", self.settings.channel_short, f":warning: interrupted on {self.host}"))
        if self.settings.channel_final:
            self.messages.put(("final", self.settings.channel_final, self.summary_text(summary)))
        self.close()

    def summary_text(self, summary: Summary) -> str:
        head = f"experiments on {self.host} {'interrupted' if summary.stopped else 'finished'}: {summary.counts()}"
        lines = [f"{o.index:>4} {o.status:<11} {o.name} {o.elapsed:.1f}s" for o in summary.outcomes]
        return head + ("\n```\n" + "\n".join(lines) + "\n```" if lines else "")

    # --- sending -----------------------------------------------------------------------------------------

    def _send_all(self) -> None:
        while True:
            item = self.messages.get()
            if item is None:
                return
            kind, channel, text = item
            try:
                thread = self.thread_ts if kind == "reply" else None
                response = self.client.chat_postMessage(channel=channel, text=text, thread_ts=thread)
                if kind == "parent":
                    self.thread_ts = response.get("ts")
            except Exception as exc:
                self.failed += 1
                self._report(self._describe(exc), "the experiments go on; later messages are still tried")

    def _describe(self, exc: Exception) -> str:
        response = getattr(exc, "response", None)
        if response is not None and hasattr(response, "get"):
            error = response.get("error") or str(exc)
            hints = {"invalid_auth": "check the token", "not_authed": "check the token",
                     "channel_not_found": "check the channel name and invite the bot to it",
                     "not_in_channel": "invite the bot to the channel"}
            return f"{error} ({hints[error]})" if error in hints else str(error)
        return f"cannot reach {self.settings.base_url}: {getattr(exc, 'reason', exc)}"

    def _report(self, problem: str, consequence: str) -> None:
        key = problem.split(" (")[0]
        if key not in self.reported:
            self.reported.add(key)
            self.warn(f"Slack: {problem}; {consequence}")

    def close(self) -> None:
        """Wait a bounded time for what is queued, then say what could not be sent."""
        self.messages.put(None)
        deadline = time.monotonic() + self.flush_timeout
        self.sender.join(max(0.0, deadline - time.monotonic()))
        # Still queued (the end marker counts for the one being sent), plus the ones that failed.
        unsent = self.failed + (self.messages.qsize() if self.sender.is_alive() else 0)
        if self.sender.is_alive():
            self.warn(f"Slack: gave up waiting after {self.flush_timeout:g} s; {unsent} message(s) could not be sent")
        elif unsent:
            self.warn(f"Slack: {unsent} message(s) could not be sent")
