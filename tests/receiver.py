#!/usr/bin/python3
"""receiver.py - a recording HTTP/1.1 webhook receiver for tests and the example.

Every request is appended to --log as one JSON line (flushed at once):
  {"t": unix time, "method", "path", "query", "headers": {Name: value}, "h": {name: value},
   "body": text, "status": status answered (null for /hang)}

The answer depends on the first path segment, so one receiver serves many webhooks:
  /ok/...                 200 "ok"
  /fail/...               500
  /status/<code>/...      <code>
  /flaky/<n>/...          500 for the first n requests per (webhook-id header, path), then 200
  /redirect/...           302 Location: http://127.0.0.1:9/
  /retry-after/<code>/<value>/<n>/...
                          <code> with "Retry-After: <value>" for the first n requests per
                          (webhook-id header, path), then 200
  /slow/<ms>/...          sleeps <ms> then 200
  /hang/...               sleeps 60 s (the client should time out first)
  /big/<bytes>/...        200 with a body of <bytes> 'x' (response truncation tests)
  anything else           404

Readiness: once listening, the chosen port is written to --port-file (tmp + rename).
SIGTERM and SIGINT stop it with exit status 0.
"""

import argparse
import json
import socket
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HANG_SECONDS = 60.0
REDIRECT_TO = "http://127.0.0.1:9/"


class Recorder:
    """Recorder appends one JSON line per request and keeps the flaky counters, under one lock."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8") if path else None
        self.flaky = {}

    def record(self, entry):
        line = json.dumps(entry, ensure_ascii=False, sort_keys=False)
        with self.lock:
            if self.file:
                self.file.write(line + "\n")
                self.file.flush()

    def flaky_count(self, key):
        """flaky_count returns how many requests came before this one for key, and counts it."""
        with self.lock:
            n = self.flaky.get(key, 0)
            self.flaky[key] = n + 1
            return n

    def close(self):
        with self.lock:
            if self.file:
                self.file.close()
                self.file = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus the client's
        # delayed ACK stalls every keep-alive answer by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self):
        return "hookline-test-receiver/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("receiver: %s - %s\n" % (self.address_string(), fmt % args))

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                size_line = self.rfile.readline()
                if not size_line:
                    break
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers, up to the empty line
                    while True:
                        line = self.rfile.readline()
                        if not line or line in (b"\r\n", b"\n"):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after the chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _decide(self, path, headers_lower):
        """_decide returns (status, extra headers, body bytes, delay seconds) for a path."""
        segs = [s for s in path.split("/") if s != ""]
        first = segs[0] if segs else ""
        if first == "ok":
            return 200, {}, b"ok", 0.0
        if first == "fail":
            return 500, {}, b"fail", 0.0
        if first == "status":
            try:
                code = int(segs[1])
                if not 100 <= code <= 599:
                    raise ValueError
            except (IndexError, ValueError):
                return 400, {}, b"bad status code", 0.0
            return code, {}, b"status %d" % code, 0.0
        if first == "flaky":
            try:
                n = int(segs[1])
            except (IndexError, ValueError):
                return 400, {}, b"bad flaky count", 0.0
            key = (headers_lower.get("webhook-id", ""), path)
            seen = self.server.recorder.flaky_count(key)
            if seen < n:
                return 500, {}, b"flaky failure %d of %d" % (seen + 1, n), 0.0
            return 200, {}, b"ok", 0.0
        if first == "retry-after":
            try:
                code, value, n = int(segs[1]), segs[2], int(segs[3])
                if not 100 <= code <= 599:
                    raise ValueError
            except (IndexError, ValueError):
                return 400, {}, b"bad retry-after path", 0.0
            key = (headers_lower.get("webhook-id", ""), path)
            if self.server.recorder.flaky_count(key) < n:
                return code, {"Retry-After": value}, b"later", 0.0
            return 200, {}, b"ok", 0.0
        if first == "redirect":
            return 302, {"Location": REDIRECT_TO}, b"moved", 0.0
        if first == "slow":
            try:
                ms = float(segs[1])
            except (IndexError, ValueError):
                return 400, {}, b"bad delay", 0.0
            return 200, {}, b"ok", max(ms, 0.0) / 1000.0
        if first == "hang":
            return None, {}, b"", HANG_SECONDS
        if first == "big":
            try:
                n = int(segs[1])
            except (IndexError, ValueError):
                return 400, {}, b"bad size", 0.0
            return 200, {}, b"x" * max(n, 0), 0.0
        return 404, {}, b"not found", 0.0

    def _handle(self):
        t = time.time()
        body = self._read_body()
        split = urlsplit(self.path)
        headers = {}
        lower = {}
        for name, value in self.headers.items():
            headers[name] = headers[name] + ", " + value if name in headers else value
            lk = name.lower()
            lower[lk] = lower[lk] + ", " + value if lk in lower else value
        status, extra, payload, delay = self._decide(split.path, lower)
        self.server.recorder.record({
            "t": t,
            "method": self.command,
            "path": split.path,
            "query": split.query,
            "headers": headers,
            "h": lower,
            "body": body.decode("utf-8", errors="replace"),
            "status": status,
        })
        if delay > 0:
            time.sleep(delay)
        if status is None:  # /hang: give up on this connection without an answer
            self.close_connection = True
            return
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs when a sender opens many connections at
    # once; the client then retransmits after 1 s.
    request_queue_size = 1024
    allow_reuse_address = True


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="recording HTTP/1.1 webhook receiver for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--port-file", help="written (atomically) with the port once listening")
    ap.add_argument("--log", help="JSON Lines log of every request (appended)")
    ap.add_argument("--verbose", action="store_true", help="log each request on stderr")
    args = ap.parse_args(argv)

    recorder = Recorder(args.log)
    server = Server((args.host, args.port), Handler)
    server.recorder = recorder
    server.verbose = args.verbose

    def on_signal(signum, frame):
        # serve_forever runs in this (main) thread: leave it by exception, not shutdown().
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    if args.verbose:
        sys.stderr.write("receiver: listening on %s:%d\n" % (args.host, port))
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        server.server_close()
        recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
