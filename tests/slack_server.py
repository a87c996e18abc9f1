"""A small Slack-Web-API-compatible HTTP server on 127.0.0.1 for the notification tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class FakeSlack:
    """Answers chat.postMessage like Slack does; records every call it receives."""

    def __init__(self, token: str = "xoxb-test", ratelimit_first: int = 0) -> None:
        self.token = token
        self.ratelimit_left = ratelimit_first
        self.calls: list[dict] = []  # every request, rate-limited ones included
        self.posted: list[dict] = []  # messages accepted
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode("utf-8")
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                server.handle(self, self.path, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api/"

    def __enter__(self) -> FakeSlack:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, request: BaseHTTPRequestHandler, path: str, body: dict) -> None:
        method = path.rsplit("/", 1)[-1]
        with self.lock:
            self.calls.append({"method": method, **body})
            if self.ratelimit_left > 0:
                self.ratelimit_left -= 1
                return self.reply(request, {"ok": False, "error": "ratelimited"}, status=429,
                                  headers={"Retry-After": "1"})
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return self.reply(request, {"ok": False, "error": "invalid_auth"})
            if method != "chat.postMessage":
                return self.reply(request, {"ok": False, "error": "unknown_method"})
            if body.get("channel", "").startswith("missing"):
                return self.reply(request, {"ok": False, "error": "channel_not_found"})
            ts = f"1700000000.{len(self.posted) + 1:06d}"
            self.posted.append({**body, "ts": ts})
            return self.reply(request, {"ok": True, "channel": body.get("channel"), "ts": ts,
                                        "message": {"text": body.get("text"), "ts": ts}})

    @staticmethod
    def reply(request: BaseHTTPRequestHandler, payload: dict, status: int = 200, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(data)
