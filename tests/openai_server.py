"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, with deterministic faults.

Tests and the judge throughput benchmark point the real `openai` client (`AsyncOpenAI(base_url=
server.base_url, ...)`) at this server, so the judge's HTTP path, retries and error handling run
for real without a network or an API key. Standard library only.

What it serves:

- `POST /v1/chat/completions`: the assistant content comes from `responder(request_json)`
  (default `default_verdict`, a verdict derived from a hash of the messages).
- `GET /v1/models`: the one model it serves.
- anything else: a 404 error in OpenAI's JSON shape.

Faults are decided per request *content* (messages, model, max_tokens, temperature) and the
number of times that content has been seen before, never by time or arrival order: the k-th
sighting (k = 0, 1, ...) with k < `Faults.max_per_request` draws a uniform number from a hash of
(seed, content hash, k) and maps it to 429 / 500 / timeout / malformed / none by cumulative
rates; later sightings are always served normally. So a client that retries enough always
succeeds and receives exactly the reply a fault-free server would give, and two servers with the
same seed fail the same requests the same way whatever the concurrency.

Run as a script for manual or benchmark use (serves until Ctrl-C):

    python tests/openai_server.py --port 8123 [--rpm N] [--latency S] [--fault-rate P]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import signal
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openai_faults import (  # noqa: F401 - re-exported: tests import them from here
    MALFORMED_CONTENT,
    RPM_WINDOW_S,
    VERDICT_CHOICES,
    FaultKind,
    Faults,
    content_hash,
    default_verdict,
    error_body,
    format_seconds,
    message_chars,
    sha256_json,
)

Responder = Callable[[dict], str]
Reply = tuple[int, dict, dict[str, str]]
"""(status, JSON payload, extra headers) of one response."""
RawReply = Callable[[dict], "tuple[int, bytes] | None"]
"""request JSON -> (status, raw body) sent as is, or None for the normal reply."""

class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that never blocks on handler threads and logs nothing."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # The default backlog of 5 drops SYNs when a benchmark opens dozens of connections at once,
    # which costs a 1 s TCP retransmit each.
    request_queue_size = 256
    owner: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients that hang up (timeouts, stop()) are expected here."""


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the owning OpenAIServer; HTTP/1.1 keep-alive with Content-Length."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per request), which would swamp any latency or throughput measurement.
    disable_nagle_algorithm = True
    server_version = "glotbench-scripted-openai/1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Log nothing (tests read stats(), not stderr)."""

    def setup(self) -> None:
        """Register the connection so stop() can close it."""
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        """Unregister the connection; a peer that already left is not an error."""
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._track(self.connection, add=False)

    def _read_body(self) -> bytes:
        """The request body (always drained, so the next request on the connection parses)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> bool:
        """Write one JSON response; False when the client has already hung up."""
        return self.send_body(status, json.dumps(payload).encode("utf-8"), headers)

    def send_body(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> bool:
        """Write one response with a JSON content type and any body; False when the client left."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            return True
        except OSError:  # BrokenPipe, ConnectionReset: the client gave up (timeouts, stop())
            self.close_connection = True
            return False

    def do_GET(self) -> None:  # noqa: N802
        """GET /v1/models lists the served model; other paths are 404."""
        self._read_body()
        self.server.owner._handle_get(self)

    def do_POST(self) -> None:  # noqa: N802
        """POST /v1/chat/completions is served; other paths are 404."""
        body = self._read_body()
        self.server.owner._handle_post(self, body)


class OpenAIServer:
    """A scripted OpenAI chat-completions server on 127.0.0.1 with deterministic fault injection.

    Use as a context manager (`with OpenAIServer() as server: ...server.base_url...`) or call
    start() / stop(). `responder(request_json) -> str` gives the content of normal replies.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        faults: Faults = Faults(),  # noqa: B008 - frozen, so a shared default is safe
        latency: float = 0.0,
        rpm: float | None = None,
        api_key: str | None = None,
        model: str = "scripted-judge",
        host: str = "127.0.0.1",
        port: int = 0,
        raw_reply: RawReply | None = None,
    ) -> None:
        """Configure the server; nothing listens until start(). `port=0` picks a free port.

        `latency` delays every 200 reply (normal or malformed); `rpm` limits accepted requests
        per sliding minute (over-limit ones get 429 before any fault is drawn); `api_key`, when
        set, is required as `Authorization: Bearer <api_key>`; `model` is the only model served;
        `raw_reply(request_json)`, when it returns (status, body), replaces the reply to an
        accepted request with that body sent as is (a body that is not a chat completion, an
        error of a shape no fault produces), counted under its status only.
        """
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}")
        if rpm is not None and rpm <= 0:
            raise ValueError(f"rpm must be positive or None, got {rpm}")
        self.responder: Responder = responder or default_verdict
        self.raw_reply = raw_reply
        self.faults = faults
        self.latency = latency
        self.rpm = rpm
        self.api_key = api_key
        self.model = model
        self.host = host
        self.port = port
        self.base_url: str = ""
        """`http://127.0.0.1:<port>/v1`, set by start()."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._seen: dict[str, int] = collections.defaultdict(int)
        self._accepted: collections.deque[float] = collections.deque()
        self._next_id = 0
        self._stats = self._empty_stats()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        """Bind, start serving in a daemon thread, set `base_url`; returns self."""
        if self._httpd is not None:
            raise RuntimeError(f"server already started at {self.base_url}")
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}/v1"
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="openai-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: wake sleeping handlers, close open connections and the listening socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        """start() and return the server."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """stop()."""
        self.stop()

    # -- statistics --------------------------------------------------------------------------

    @staticmethod
    def _empty_stats() -> dict:
        """Zeroed counters (see stats())."""
        return {
            "requests": 0,
            "served": 0,
            "status": {},
            "timeouts": 0,
            "malformed": 0,
            "served_times": [],
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }

    def stats(self) -> dict:
        """A thread-safe snapshot of the counters.

        `requests`: HTTP requests to chat/completions; `status`: their responses by status code
        (string keys), except timeout faults, which are counted in `timeouts` only (their late
        reply usually reaches nobody), so `requests == sum(status.values()) + timeouts` once all
        handlers have answered; `served`: 200 replies with responder content, with their
        `time.monotonic()` stamps in `served_times`; `malformed`: 200 replies with non-verdict
        content; `prompt_tokens` / `completion_tokens`: summed usage of all 200 replies.
        """
        with self._lock:
            snapshot = dict(self._stats)
            snapshot["status"] = dict(self._stats["status"])
            snapshot["served_times"] = list(self._stats["served_times"])
            return snapshot

    def reset_stats(self) -> None:
        """Zero the counters. Fault history (sightings per content) and the rpm window are kept."""
        with self._lock:
            self._stats = self._empty_stats()

    def _count_status(self, status: int) -> None:
        """Count one chat/completions response by status code."""
        with self._lock:
            key = str(status)
            self._stats["status"][key] = self._stats["status"].get(key, 0) + 1

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        """Remember or forget an open client connection."""
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- request handling --------------------------------------------------------------------

    def _authorized(self, handler: _Handler) -> Reply | None:
        """None when no key is required or the Bearer token matches; otherwise the 401 reply."""
        if self.api_key is None or handler.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        message = "Incorrect API key provided to the scripted server."
        return 401, error_body(message, "invalid_request_error", "invalid_api_key"), {}

    def _not_found(self, handler: _Handler) -> None:
        """404 for an unknown path."""
        message = f"Unknown request URL: {handler.command} {handler.path}."
        handler.send_json(404, error_body(message, "invalid_request_error", "unknown_url"))

    def _handle_get(self, handler: _Handler) -> None:
        """GET: the model list, or 404."""
        if handler.path.rstrip("/") != "/v1/models":
            self._not_found(handler)
            return
        refusal = self._authorized(handler)
        if refusal is not None:
            handler.send_json(*refusal)
            return
        model = {"id": self.model, "object": "model", "owned_by": "glotbench"}
        handler.send_json(200, {"object": "list", "data": [model]})

    def _handle_post(self, handler: _Handler, body: bytes) -> None:
        """POST: chat completions, or 404.

        Statistics are updated before the reply is written, so a client that has its reply
        already sees it counted.
        """
        if handler.path.rstrip("/") != "/v1/chat/completions":
            self._not_found(handler)
            return
        with self._lock:
            self._stats["requests"] += 1
        try:
            reply = self._chat(handler, body)
        except Exception as err:  # a broken responder should be a visible 500, not a hang-up
            message = f"responder raised {type(err).__name__}: {err}"
            reply = 500, error_body(message, "server_error", None), {}
        if reply is not None:
            self._count_status(reply[0])
            handler.send_json(*reply)

    def _chat(self, handler: _Handler, body: bytes) -> Reply | None:
        """The reply to one chat request (None for a timeout fault, which answers by itself)."""
        refusal = self._authorized(handler)
        if refusal is not None:
            return refusal
        try:
            request = json.loads(body or b"null")
        except ValueError as err:
            message = f"Request body is not JSON: {err}"
            return 400, error_body(message, "invalid_request_error", None), {}
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            message = "Request body must be a JSON object with a `messages` list."
            return 400, error_body(message, "invalid_request_error", None), {}
        if request.get("stream"):
            message = "stream=true is not supported by the scripted server."
            return 400, error_body(message, "invalid_request_error", None), {}
        if request.get("model") != self.model:
            message = (
                f"The model `{request.get('model')}` does not exist; "
                f"this server serves `{self.model}`."
            )
            return 404, error_body(message, "invalid_request_error", "model_not_found"), {}

        raw = self.raw_reply(request) if self.raw_reply is not None else None
        if raw is not None:
            self._count_status(raw[0])
            handler.send_body(*raw)
            return None

        wait = self._admit()
        if wait is not None:
            message = (
                f"Rate limit of {self.rpm} requests per minute reached; retry in {wait:.3f} s."
            )
            error = error_body(message, "rate_limit_error", "rate_limit_exceeded")
            return 429, error, {"Retry-After": format_seconds(wait)}

        request_hash = content_hash(request)
        with self._lock:
            k = self._seen[request_hash]
            self._seen[request_hash] = k + 1
        fault = self.faults.decide(request_hash, k)

        if fault == "429":
            message = "Scripted rate limit (injected fault)."
            error = error_body(message, "rate_limit_error", "rate_limit_exceeded")
            return 429, error, {"Retry-After": format_seconds(self.faults.retry_after)}
        if fault == "500":
            message = "Scripted server error (injected fault)."
            return 500, error_body(message, "server_error", None), {}
        if fault == "timeout":
            with self._lock:
                self._stats["timeouts"] += 1
            # The event (set by stop()) makes the stall interruptible; the late reply usually
            # meets a closed connection, which send_json tolerates.
            if not self._stopping.wait(self.faults.timeout_sleep):
                handler.send_json(200, self._completion(request, self.responder(request)))
            handler.close_connection = True
            return None

        if self.latency > 0 and self._stopping.wait(self.latency):
            handler.close_connection = True
            return None
        malformed = fault == "malformed"
        content = MALFORMED_CONTENT if malformed else self.responder(request)
        payload = self._completion(request, content)
        with self._lock:
            self._stats["prompt_tokens"] += payload["usage"]["prompt_tokens"]
            self._stats["completion_tokens"] += payload["usage"]["completion_tokens"]
            if malformed:
                self._stats["malformed"] += 1
            else:
                self._stats["served"] += 1
                self._stats["served_times"].append(time.monotonic())
        return 200, payload, {}

    def _admit(self) -> float | None:
        """Apply the rpm limit: None if accepted (and recorded), else seconds until a slot frees."""
        if self.rpm is None:
            return None
        with self._lock:
            now = time.monotonic()
            while self._accepted and self._accepted[0] <= now - RPM_WINDOW_S:
                self._accepted.popleft()
            if len(self._accepted) >= self.rpm:
                return max(self._accepted[0] + RPM_WINDOW_S - now, 0.001)
            self._accepted.append(now)
            return None

    def _completion(self, request: dict, content: str) -> dict:
        """A chat.completion payload; usage is a rough count of 4 characters per token."""
        with self._lock:
            self._next_id += 1
            completion_id = f"chatcmpl-{self._next_id}"
        prompt_tokens = math.ceil(message_chars(request.get("messages")) / 4)
        completion_tokens = math.ceil(len(content) / 4)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C; `--fault-rate P` splits P evenly over 429, 500, timeout and malformed."""
    parser = argparse.ArgumentParser(
        description="Scripted OpenAI-compatible chat-completions server with deterministic faults.",
        epilog="example: python tests/openai_server.py --port 8123 --rpm 600 --latency 0.2 --fault-rate 0.1",
    )
    parser.add_argument("--port", type=int, default=8123, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--rpm", type=float, default=None, help="requests per minute allowed (sliding 60 s)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each normal reply")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="total fault rate of first attempts")
    parser.add_argument("--max-per-request", type=int, default=2, help="faults per request content at most")
    parser.add_argument("--timeout-sleep", type=float, default=3.0, help="stall of a timeout fault (s)")
    parser.add_argument("--retry-after", type=float, default=0.0, help="Retry-After of fault 429s (s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument("--api-key", default=None, help="require this Bearer key")
    parser.add_argument("--model", default="scripted-judge", help="the model name served")
    args = parser.parse_args(argv)
    share = args.fault_rate / 4
    faults = Faults(rate_429=share, rate_500=share, rate_timeout=share, rate_malformed=share,
                    max_per_request=args.max_per_request, retry_after=args.retry_after,
                    timeout_sleep=args.timeout_sleep, seed=args.seed)
    server = OpenAIServer(faults=faults, latency=args.latency, rpm=args.rpm, api_key=args.api_key,
                          model=args.model, port=args.port)
    # A process started in the background of a non-interactive shell inherits SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler: install it (and SIGTERM) here.
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with server:
        print(f"serving {server.base_url} (model {server.model!r}); Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    print(json.dumps({k: v for k, v in server.stats().items() if k != "served_times"}), flush=True)


if __name__ == "__main__":
    main()
