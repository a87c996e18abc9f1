"""Slack notifications: the real slack_sdk WebClient against a local Slack-API-compatible server."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT, read_log, run_script

from cool_runner import ConfigError
from cool_runner.cli import run_main
from cool_runner.run.notify import default_line, slack_settings

pytest.importorskip("slack_sdk")
from slack_server import FakeSlack

MODULE = """
import time
def main(exp):
    if exp.get("sleep"):
        time.sleep(exp.sleep)
    if exp.get("fail"):
        raise ValueError("loss became nan")
    exp.ACC = 0.93
"""

STUDY = """
Global:
  slack: true
  slack_config:
    channel_short: runs
    channel_final: summaries
Desc: pruning study
Module: slackmod
YamlLog: log.yaml
---
Name: good
---
Name: bad
fail: true
---
Name: skip
"""


@pytest.fixture
def study(workdir, write):
    write("slackmod.py", MODULE)
    write("experiment.yaml", STUDY)
    return workdir


def run(folder, server, *args, env=None):
    full_env = {"SLACK_BOT_TOKEN": "xoxb-test", **(env or {})}
    return run_script("run.py", f"+Global.slack_config.base_url={server.base_url}", *args, cwd=folder, env=full_env)


def test_thread_replies_and_summary(study):
    with FakeSlack() as server:
        result = run(study, server)
    assert result.returncode == 1, result.stderr  # one experiment failed
    host = socket.gethostname()
    posted = server.posted
    assert [(p["channel"], p.get("thread_ts")) for p in posted] == [
        ("runs", None), ("runs", posted[0]["ts"]), ("runs", posted[0]["ts"]), ("summaries", None)]
    assert posted[0]["text"] == f"experiments on {host} started: pruning study"
    assert posted[1]["text"].startswith("good (RND_IDX ") and "done in" in posted[1]["text"]
    assert posted[1]["text"].endswith(": ACC=0.93")
    assert posted[2]["text"].startswith(":x: bad (RND_IDX ") and posted[2]["text"].endswith("\n> ValueError: loss became nan")
    summary = posted[3]["text"]
    assert summary.startswith(f"experiments on {host} finished: 1 done, 1 failed, 1 skipped, 0 interrupted\n```\n")
    assert "   0 done        good" in summary and "   1 failed      bad" in summary and summary.endswith("```")
    assert len(server.calls) == 4
    assert "Slack" not in result.stderr


def test_rate_limited_once_is_delivered_once(study):
    with FakeSlack(ratelimit_first=1) as server:
        result = run(study, server, "--pick", "0")
    assert result.returncode == 0, result.stderr
    assert len(server.calls) == 4  # the refused attempt, then the parent, the reply and the summary
    texts = [p["text"] for p in server.posted]
    assert len(texts) == 3 and len(set(texts)) == 3
    assert texts[0].startswith("experiments on ")


def test_unreachable_server_does_not_stop_the_experiments(study):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    result = run_script("run.py", f"+Global.slack_config.base_url=http://127.0.0.1:{port}/api/", cwd=study,
                        env={"SLACK_BOT_TOKEN": "xoxb-test"})
    assert time.monotonic() - start < 40
    assert result.returncode == 1
    assert [r["Name"] for r in read_log(study / "log.yaml")] == ["good", "bad"]
    warnings = [line for line in result.stderr.splitlines() if "Slack" in line]
    assert warnings[0].startswith(f"warning: Slack: cannot reach http://127.0.0.1:{port}/api/")
    assert "4 message(s) could not be sent" in warnings[-1] and len(warnings) == 2


def test_wrong_token_and_missing_channel_are_reported_once(study, write):
    write("experiment.yaml", STUDY.replace("channel_final: summaries", "channel_final: missing-channel"))
    with FakeSlack(token="xoxb-right") as server:
        result = run(study, server, env={"SLACK_BOT_TOKEN": "xoxb-wrong"})
    assert result.returncode == 1
    warnings = [line for line in result.stderr.splitlines() if "Slack" in line]
    assert warnings[0] == ("warning: Slack: invalid_auth (check the token); the experiments go on; later messages are "
                           "still tried")
    assert len([w for w in warnings if "invalid_auth" in w]) == 1
    assert server.posted == []
    with FakeSlack() as server:
        result = run(study, server)
    assert any("channel_not_found (check the channel name and invite the bot to it)" in line
               for line in result.stderr.splitlines())
    assert [p["channel"] for p in server.posted] == ["runs", "runs", "runs"]


def test_say_formats_each_line(study, write):
    write("experiment.yaml", STUDY.replace("channel_final: summaries",
                                           "channel_final: summaries\n    say: f\"{exp.Name} -> {exp.get('ACC')}\""))
    with FakeSlack() as server:
        run(study, server, "--pick", "0")
    assert server.posted[1]["text"] == "good -> 0.93"


def test_token_from_another_variable_and_from_the_file(study, write):
    write("experiment.yaml", STUDY.replace("channel_final: summaries", "channel_final: summaries\n    token_env: MY_TOKEN"))
    with FakeSlack(token="xoxb-mine") as server:
        result = run(study, server, "--pick", "0", env={"MY_TOKEN": "xoxb-mine", "SLACK_BOT_TOKEN": ""})
    assert result.returncode == 0 and len(server.posted) == 3
    write("experiment.yaml", STUDY.replace("channel_final: summaries", "channel_final: summaries\n    token: xoxb-file"))
    with FakeSlack(token="xoxb-file") as server:
        result = run(study, server, "--pick", "0", env={"SLACK_BOT_TOKEN": ""})
    assert result.returncode == 0 and len(server.posted) == 3
    assert "the Slack token is written in the experiment file" in result.stderr


def test_dry_sends_nothing(study):
    with FakeSlack() as server:
        result = run(study, server, "--dry")
    assert result.returncode == 0 and server.calls == []


@pytest.mark.parametrize(
    ("config", "env", "fragment"),
    [
        pytest.param({"channel_short": "runs"}, {}, "no Slack token: the environment variable SLACK_BOT_TOKEN is not set",
                     id="no-token"),
        pytest.param({}, {"SLACK_BOT_TOKEN": "x"}, "no channel to post to", id="no-channel"),
        pytest.param({"channel_short": "r", "colour": "x"}, {"SLACK_BOT_TOKEN": "x"}, "unknown setting 'colour'",
                     id="unknown"),
        pytest.param({"channel_short": "r", "say": "exp.Name +"}, {"SLACK_BOT_TOKEN": "x"}, "say is not a Python expression",
                     id="bad-say"),
    ],
)
def test_settings_errors(config, env, fragment):
    with pytest.raises(ConfigError) as info:
        slack_settings({"slack": True, "slack_config": config}, "experiment.yaml", env)
    assert fragment in str(info.value) and str(info.value).startswith("experiment.yaml: Global.")


def test_missing_slack_sdk_fails_before_anything_runs(study, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "slack_sdk", None)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    assert run_main(["--exp", "experiment.yaml"]) == 2
    assert "Slack is enabled but slack_sdk is not installed" in capsys.readouterr().err
    assert not (study / "log.yaml").exists()


def test_slack_off_needs_nothing():
    assert slack_settings({"slack": False}, "f.yaml", {}) is None


def test_default_line():
    record = {"Name": "a", "RND_IDX": 5, "STATUS": "done", "TIME_ELAPSED": 2.25, "ACC": 0.912345, "lr": 0.1,
              "CURVE": [1, 2], "REP": 0}
    assert default_line(record) == "a (RND_IDX 5) done in 2.2 s: ACC=0.9123"


@pytest.mark.timeout(60)
def test_double_ctrl_c_posts_interrupted_and_the_summary(study, write):
    write("experiment.yaml", STUDY.replace("Name: good\n", "Name: good\nsleep: 30\n"))
    with FakeSlack() as server:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), f"+Global.slack_config.base_url={server.base_url}"], cwd=study,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**__import__("os").environ, "SLACK_BOT_TOKEN": "xoxb-test", "NO_COLOR": "1"})
        deadline = time.monotonic() + 20
        while not server.posted:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        line = ""
        while "press Ctrl-C again" not in line:
            line = process.stdout.readline()
            assert line
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 130
    texts = [p["text"] for p in server.posted]
    assert texts[-2] == f":warning: interrupted on {socket.gethostname()}"
    assert server.posted[-2]["thread_ts"] == server.posted[0]["ts"]
    assert texts[-1].startswith(f"experiments on {socket.gethostname()} interrupted: 0 done, 0 failed, 0 skipped, "
                                "1 interrupted")


def test_only_requests_that_never_left_are_retried():
    from urllib.error import URLError

    from cool_runner.run.notify import _undelivered

    assert _undelivered(URLError(ConnectionRefusedError(111, "refused")))
    assert _undelivered(URLError(socket.gaierror(-2, "unknown host")))
    assert not _undelivered(URLError(ConnectionResetError(104, "reset")))
    assert not _undelivered(URLError(TimeoutError("timed out")))
