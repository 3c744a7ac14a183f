#!/usr/bin/env python3
"""Time to first token of a long session continued after a server restart,
versus resending the whole history to a fresh server (docs/BENCHMARKS.md,
"Sessions over HTTP").

  bench/session_resume.py build/strata MODEL [--tokens 4096] [--reps 3] [--threads 2]

1. `strata serve --session-dir DIR` takes a request on session "bench" whose
   prompt is TOKENS random token ids (one token generated): the session file
   then holds TOKENS + 1 tokens and their KV. The server stops.
2. Each repetition:
   - resume: the page cache is dropped (echo 3 > /proc/sys/vm/drop_caches if
     permitted, else posix_fadvise(DONTNEED) on the session file: what was
     used is reported), a new server starts, and once it listens a streamed
     request {"session": "bench", "prompt": ""} is timed from sending to its
     first token (the server reads the session's KV from the file and
     computes one token);
   - resend: the page cache is dropped, a new server without sessions starts,
     and a streamed request whose prompt is the history's TOKENS + 1 tokens is
     timed the same way (the whole prefill).
Medians are reported, with each repetition's figures. Only the Python
standard library is used.
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time


class Server:
    def __init__(self, strata, model, threads, ctx, session_dir=None):
        args = [strata, "serve", "-m", model, "--port", "0", "-t", str(threads), "-c", str(ctx), "--parallel", "1",
                "--max-tokens-limit", "64"]
        if session_dir:
            args += ["--session-dir", session_dir]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        self.port = None
        self.log = []
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            raise RuntimeError("the server did not start:\n" + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)

    def post(self, path, body, timeout=3600):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        return c, c.getresponse()

    def ttft(self, body):
        """Seconds from sending a streamed completion request to its first token's chunk; then drains it."""
        body = dict(body, stream=True)
        t0 = time.monotonic()
        c, r = self.post("/v1/completions", body)
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {r.read()!r}")
        first = None
        while True:
            line = r.readline()
            if not line:
                break
            if line.startswith(b"data: ") and first is None and line.strip() != b"data: [DONE]":
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(str(chunk))
                if chunk.get("choices"):
                    first = time.monotonic() - t0
        c.close()
        if first is None:
            raise RuntimeError("no token arrived")
        return first


def drop_page_cache(path):
    """Drops the page cache: all of it if permitted, else the pages of path."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "drop_caches"
    except OSError:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return "fadvise"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("strata")
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=32000, help="token ids are drawn from [3, vocab)")
    ap.add_argument("--dir", default=None, help="session directory (default: a new temp directory)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    a = ap.parse_args()

    sessions = a.dir or tempfile.mkdtemp(prefix="strata-session-bench-")
    ctx = a.tokens + 128
    rng = random.Random(1234)
    history = [rng.randrange(3, a.vocab) for _ in range(a.tokens)]
    greedy = {"temperature": 0, "max_tokens": 4}

    s = Server(a.strata, a.model, a.threads, ctx, sessions)
    t0 = time.monotonic()
    c, r = s.post("/v1/completions", {"prompt": history, "max_tokens": 1, "temperature": 0, "session": "bench"})
    body = json.loads(r.read())
    c.close()
    if r.status != 200:
        raise RuntimeError(body)
    print(f"session created: {body['usage']['prompt_tokens'] + 1} tokens in {time.monotonic() - t0:.2f} s",
          file=sys.stderr)
    s.stop()
    session_file = os.path.join(sessions, "bench.session")
    size = os.path.getsize(session_file)

    resume, resend, dropped = [], [], set()
    for rep in range(a.reps):
        dropped.add(drop_page_cache(session_file))
        s = Server(a.strata, a.model, a.threads, ctx, sessions)
        dropped.add(drop_page_cache(session_file))  # the model's load may have read it ahead: dropped again
        resume.append(s.ttft(dict(greedy, prompt="", session="bench")))
        s.stop()
        dropped.add(drop_page_cache(a.model))
        s = Server(a.strata, a.model, a.threads, ctx)
        # The whole history again (as many tokens as the session holds), to a server that has seen none of it.
        resend.append(s.ttft(dict(greedy, prompt=history + [history[0]])))
        s.stop()
        print(f"rep {rep + 1}: resume {resume[-1]:.3f} s, resend {resend[-1]:.3f} s", file=sys.stderr)

    res = {
        "tokens": a.tokens + 1,
        "session_file_mib": round(size / 2**20, 1),
        "resume_ttft_s": [round(x, 4) for x in resume],
        "resend_ttft_s": [round(x, 4) for x in resend],
        "resume_median_s": round(statistics.median(resume), 4),
        "resend_median_s": round(statistics.median(resend), 4),
        "speedup": round(statistics.median(resend) / statistics.median(resume), 1),
        "page_cache": "+".join(sorted(dropped)),
    }
    print(f"| history | resume after restart (median) | resend to a fresh server (median) | speedup | session file |")
    print(f"|---:|---:|---:|---:|---:|")
    print(f"| {res['tokens']} tokens | {res['resume_median_s']:.3f} s | {res['resend_median_s']:.2f} s | "
          f"{res['speedup']}x | {res['session_file_mib']} MiB |")
    print(f"(page cache dropped by {res['page_cache']}; per repetition: resume {res['resume_ttft_s']}, "
          f"resend {res['resend_ttft_s']})")
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
