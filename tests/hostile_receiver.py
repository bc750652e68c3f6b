#!/usr/bin/python3
"""hostile_receiver.py - a misbehaving HTTP endpoint for tests, on raw sockets (http.server
cannot send half a status line, a header without a colon or a reset in mid-answer).

Every request whose head arrived is appended to --log as one JSON line (flushed at once), much
like receiver.py's: {"t", "method", "path", "query", "h": {lower-case name: value}, "body",
"port", "behaviour"}. The first path segment picks the misbehaviour:

  /endless/...              200, no length, then body bytes until the client goes away; then
                            one more line: {"event": "gone", "sent": bytes, ...}
  /trickle/<ms>/...         a 200 status line, then the rest of the head one byte every <ms> ms
  /bighead/<bytes>/...      200 with one header line of <bytes> bytes
  /manyheaders/<n>/...      200 with n headers "X-Filler-i: 64 bytes" (a complete, valid answer)
  /nocolon/...              200 whose header section holds a line without a colon
  /garbage/...              a status line that is not HTTP
  /redirect/...?to=URL      302 Location: URL
  /reset/...                half a status line and header, then a TCP reset
  /ok/...                   200 "ok"
  anything else             404

--extra-ports N listens on N more ports (answering the same way). --refusing-ports N binds N
more ports without listening: connecting to them is refused, and no other program can take them
while this one runs. Once all are bound, --port-file gets {"listen": [main port, extra ports...],
"refuse": [ports...]} as JSON (tmp + rename).
SIGTERM and SIGINT stop it with exit status 0.
"""

import argparse
import json
import os
import resource
import signal
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit


class Log:
    """Log appends one JSON line per request under a lock."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8") if path else None

    def record(self, entry):
        line = json.dumps(entry)
        with self.lock:
            if self.file:
                self.file.write(line + "\n")
                self.file.flush()


def read_request(conn):
    """read_request reads one request (head and Content-Length body); returns (method, target,
    headers, body) or None when the peer closed first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > 1 << 20:
            return None
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    method, target = parts[0], parts[1] if len(parts) > 1 else "/"
    headers = {}
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    need = int(headers.get("content-length") or 0)
    while len(rest) < need:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return method, target, headers, rest[:need]


def send_all(conn, data):
    """send_all writes data; returns False once the peer is gone."""
    try:
        conn.sendall(data)
        return True
    except OSError:
        return False


def int_seg(segs, i, default):
    try:
        return int(segs[i])
    except (IndexError, ValueError):
        return default


def serve(conn, port, log):
    """serve answers requests on one connection, each per its path, until one closes it."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        req = read_request(conn)
        if req is None:
            return
        method, target, headers, body = req
        split = urlsplit(target)
        segs = [s for s in split.path.split("/") if s]
        what = segs[0] if segs else ""
        log.record({"t": time.time(), "method": method, "path": split.path,
                    "query": split.query, "h": headers,
                    "body": body.decode("utf-8", errors="replace"), "port": port,
                    "behaviour": what})
        if what == "ok":
            if not send_all(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"):
                return
            continue
        if what == "endless":
            send_all(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           b"Connection: close\r\n\r\n")
            chunk, sent = b"y" * 65536, 0
            while send_all(conn, chunk):
                sent += len(chunk)
            log.record({"t": time.time(), "event": "gone", "behaviour": what, "port": port,
                        "path": split.path, "sent": sent})
            return
        if what == "trickle":
            delay = int_seg(segs, 1, 100) / 1000.0
            if not send_all(conn, b"HTTP/1.1 200 OK\r\n"):
                return
            answer = b"Content-Length: 2\r\nX-Slow: " + b"z" * 4096 + b"\r\n\r\nok"
            for i in range(len(answer)):
                if not send_all(conn, answer[i:i + 1]):
                    return
                time.sleep(delay)
            return
        if what == "bighead":
            n = int_seg(segs, 1, 1 << 20)
            send_all(conn, b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * n +
                     b"\r\nContent-Length: 2\r\n\r\nok")
            return
        if what == "manyheaders":
            n = int_seg(segs, 1, 1000)
            hs = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 64) for i in range(n))
            if not send_all(conn, b"HTTP/1.1 200 OK\r\n" + hs + b"Content-Length: 2\r\n\r\nok"):
                return
            continue
        if what == "nocolon":
            send_all(conn, b"HTTP/1.1 200 OK\r\nThis line has no colon\r\nContent-Length: 2\r\n"
                           b"\r\nok")
            return
        if what == "garbage":
            send_all(conn, b"SPLORK 12 NONSENSE\r\nfoo\r\n\r\n")
            return
        if what == "redirect":
            to = parse_qs(split.query).get("to", ["http://127.0.0.1:9/"])[0].encode()
            if not send_all(conn, b"HTTP/1.1 302 Found\r\nLocation: " + to +
                            b"\r\nContent-Length: 5\r\n\r\nmoved"):
                return
            continue
        if what == "reset":
            send_all(conn, b"HTTP/1.1 200 OK\r\nContent-Le")
            time.sleep(0.05)
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if not send_all(conn, b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"):
            return


def handle(conn, port, log):
    """handle serves one connection and always closes it."""
    try:
        serve(conn, port, log)
    except OSError:
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def accept_loop(lsock, log):
    """accept_loop hands each connection to its own thread."""
    port = lsock.getsockname()[1]
    while True:
        try:
            conn, _ = lsock.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(conn, port, log), daemon=True).start()


def write_port_file(path, ports):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(ports, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="misbehaving HTTP endpoint for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--extra-ports", type=int, default=0, help="listen on this many more ports")
    ap.add_argument("--refusing-ports", type=int, default=0,
                    help="bind this many more ports without listening")
    ap.add_argument("--port-file", help="written (atomically) with the ports once listening")
    ap.add_argument("--log", help="JSON Lines log of every request (appended)")
    args = ap.parse_args(argv)

    log = Log(args.log)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.extra_ports + args.refusing_ports + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    refusing = []
    for i in range(args.refusing_ports):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((args.host, 0))
        refusing.append(s)
    socks = []
    for i in range(1 + args.extra_ports):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((args.host, args.port if i == 0 else 0))
        s.listen(1024)
        socks.append(s)

    def on_signal(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for s in socks:
        threading.Thread(target=accept_loop, args=(s, log), daemon=True).start()
    if args.port_file:
        write_port_file(args.port_file, {"listen": [s.getsockname()[1] for s in socks],
                                         "refuse": [s.getsockname()[1] for s in refusing]})
    try:
        while True:
            signal.pause()
    except SystemExit:
        pass
    finally:
        for s in socks:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
