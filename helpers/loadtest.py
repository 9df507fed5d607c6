"""Chapter 7: measuring the model server under load, on this machine only.

    python -m helpers.loadtest --url http://127.0.0.1:8000 --requests 500 --concurrency 8

:func:`load_test` sends ``requests`` complaints to ``/predict``, keeping
``concurrency`` of them in flight, and reports the median and 95th-percentile
latency, the requests answered per second and the errors. It is bounded: at
most :data:`MAX_REQUESTS` requests and :data:`MAX_CONCURRENCY` at once, a
time limit after which no new request starts, and loopback addresses only (a
load test is not something to point at another machine).

:func:`running_server` starts ``python -m helpers.serve`` as a process on a
free loopback port and stops it with SIGTERM; :func:`measure_serving` uses
both to compare ways of serving one model (adapter applied on the fly,
merged in float32 or bfloat16, reloaded in 8 bits) and returns a plain dict
for ``outputs/results.json``.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from helpers.cli import Parser
from helpers.errors import CourseError, run_cli
from helpers.paths import ROOT, show

MAX_REQUESTS = 10_000
MAX_CONCURRENCY = 64
#: no request starts after this many seconds of a load test, unless told otherwise
TIME_LIMIT_S = 600.0


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash, if its host is this machine; a one-line error otherwise."""
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as exc:
        raise CourseError(f"{url!r} is not a URL ({exc})") from None
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise CourseError(f"{url!r}: load tests only go to this machine (127.0.0.1, ::1 or localhost)")
    return url.rstrip("/")


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values``, rounded to 0.1 (None when there are none: JSON has no NaN)."""
    import numpy as np

    return round(float(np.percentile(values, q)), 1) if values else None


async def _run(url: str, payloads: list[dict], endpoint: str, requests: int, concurrency: int,
               time_limit_s: float, timeout_s: float) -> dict:
    latencies: list[float] = []
    errors: Counter = Counter()
    answers: list[str | None] = [None] * requests
    next_index = iter(range(requests))
    start = time.perf_counter()
    stopped_early = False

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal stopped_early
        for i in next_index:  # shared iterator: each request is sent once, by whichever worker is free
            if time.perf_counter() - start > time_limit_s:
                stopped_early = True
                return
            sent = time.perf_counter()
            try:
                response = await client.post(endpoint, json=payloads[i % len(payloads)])
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            if response.status_code != 200:
                errors[str(response.status_code)] += 1
                continue
            latencies.append(time.perf_counter() - sent)
            body = response.json()
            answers[i] = body["answer"] if "answer" in body else body["choices"][0]["message"]["content"]

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits, trust_env=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    ms = [s * 1000 for s in latencies]
    return {"requests": len(latencies) + sum(errors.values()), "concurrency": concurrency, "ok": len(latencies),
            "errors": sum(errors.values()), "error_kinds": dict(errors), "seconds": round(seconds, 2),
            "requests_per_s": round(len(latencies) / seconds, 2) if seconds else 0.0,
            "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
            "stopped_early": stopped_early, "answers": answers}


def run_coroutine(coroutine):
    """``asyncio.run(coroutine)``, also where an event loop already runs (a Jupyter kernel runs one): in a thread then."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def load_test(url: str, complaints: list[str], requests: int = 100, concurrency: int = 8,
              time_limit_s: float = TIME_LIMIT_S, timeout_s: float = 120.0, endpoint: str = "/predict") -> dict:
    """Send ``requests`` complaints (cycled) at ``concurrency`` to a server on this machine and report.

    ``answers`` holds each request's answer in sending order (None for a
    failed one), so runs at different concurrencies can be compared.
    ``endpoint="/v1/chat/completions"`` sends each complaint as a user message.
    """
    url = check_loopback(url)
    if not 1 <= requests <= MAX_REQUESTS:
        raise CourseError(f"requests must be 1..{MAX_REQUESTS}, not {requests}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise CourseError(f"concurrency must be 1..{MAX_CONCURRENCY}, not {concurrency}")
    if not complaints:
        raise CourseError("no complaints to send")
    if endpoint == "/predict":
        payloads = [{"complaint": c} for c in complaints]
    else:
        payloads = [{"messages": [{"role": "user", "content": c}]} for c in complaints]
    return run_coroutine(_run(url, payloads, endpoint, requests, min(concurrency, requests), time_limit_s, timeout_s))


# --- a server process --------------------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen
    log: Path
    startup_s: float

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=60, trust_env=False).json()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, as a service manager stops it; the exit code (killed after ``timeout_s``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def running_server(model: Path | str, *args: str, startup_timeout_s: float = 300) -> Iterator[ServerProcess]:
    """``python -m helpers.serve --model model *args`` on a free loopback port, until the block ends.

    The server's output goes to a log file (a pipe nobody reads would fill and
    block it); a server that exits or does not answer ``/health`` in time is a
    CourseError carrying the last line of its log.
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="serve-") as folder:
        log = Path(folder) / "server.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        with open(log, "wb") as out:  # the server's own log, deleted with the folder: not an artifact
            process = subprocess.Popen([sys.executable, "-m", "helpers.serve", "--model", str(model),
                                        "--port", str(port), *args], cwd=ROOT, env=env, stdout=out,
                                       stderr=subprocess.STDOUT)
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log, 0.0)
        try:
            while True:
                if process.poll() is not None:
                    raise CourseError(f"the server for {show(model)} exited ({process.returncode}): "
                                      f"{server.log_tail(1)}")
                try:
                    if httpx.get(f"{server.url}/health", timeout=5, trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - start > startup_timeout_s:
                    raise CourseError(f"the server for {show(model)} did not answer within {startup_timeout_s:.0f} s")
                time.sleep(0.2)
            server.startup_s = round(time.perf_counter() - start, 2)
            yield server
        finally:
            server.stop()


# --- comparing ways of serving -----------------------------------------------------------------------------------

def serving_variants(adapter_dir: Path, merged_dir: Path, *args: str) -> dict[str, tuple[Path, list[str]]]:
    """Chapter 7's four ways to serve the fine-tune: (model directory, server arguments) by name.

    ``args`` go to every server (``"--threads", "1"`` on a shared machine).
    """
    return {"adapter_fp32": (adapter_dir, [*args]), "merged_fp32": (merged_dir, [*args]),
            "merged_bf16": (merged_dir, ["--dtype", "bfloat16", *args]),
            "merged_8bit": (merged_dir, ["--quantize", "8bit", *args])}


def _summary(run: dict) -> dict:
    return {k: v for k, v in run.items() if k != "answers"}


def measure_variant(model: Path, args: list[str], complaints: list[str], requests: dict[int, int],
                    time_limit_s: float = TIME_LIMIT_S) -> dict:
    """Start one server and measure it: start-up, load time, latency per concurrency, peak memory, batches.

    ``requests`` maps a concurrency to the number of requests sent at it.
    The answers at every concurrency above 1 are compared with those at
    concurrency 1 (each complaint answered alone): ``batched_answers_differ``
    counts the requests whose batched answer was not the one given alone.
    """
    busy_before = os.getloadavg()[0]  # other processes on the machine slow every figure below
    with running_server(model, *args) as server:
        load_test(server.url, complaints[:2], requests=2, concurrency=1)  # warm-up: first-call costs
        runs = {c: load_test(server.url, complaints, requests=n, concurrency=c, time_limit_s=time_limit_s)
                for c, n in sorted(requests.items())}
        health = server.health()
        exit_code = server.stop()
    result = {"startup_s": server.startup_s, "load_s": health["load_seconds"], "peak_rss_mib": health["peak_rss_mib"],
              "batch_sizes": health["batch_sizes"], "exit_code_on_sigterm": exit_code,
              "load_average_1min": [round(busy_before, 2), round(os.getloadavg()[0], 2)]}
    for c, run in runs.items():
        result[f"c{c}"] = _summary(run)
    alone = runs.get(1)
    if alone is not None:
        by_complaint = {i % len(complaints): a for i, a in enumerate(alone["answers"]) if a is not None}
        for c, run in runs.items():
            if c == 1:
                continue
            pairs = [(a, by_complaint.get(i % len(complaints))) for i, a in enumerate(run["answers"])]
            compared = [(a, b) for a, b in pairs if a is not None and b is not None]
            result[f"c{c}"]["batched_answers_compared"] = len(compared)
            result[f"c{c}"]["batched_answers_differ"] = sum(a != b for a, b in compared)
    return result


def measure_serving(variants: dict[str, tuple[Path, list[str]]], complaints: list[str],
                    requests: dict[int, int] | None = None, time_limit_s: float = TIME_LIMIT_S) -> dict:
    """:func:`measure_variant` for each variant, one server at a time; a variant that cannot be served says why."""
    import platform

    requests = requests or {1: 32, 8: 64}
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "complaints": len(complaints), "variants": {}}
    for name, (model, args) in variants.items():
        print(f"measuring {name} ...", flush=True)
        try:
            out["variants"][name] = measure_variant(Path(model), args, complaints, requests, time_limit_s)
        except CourseError as exc:
            out["variants"][name] = {"error": str(exc)}
    return out


# --- command line ------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m helpers.loadtest", description="A bounded load test of a server on this machine.")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--time-limit", type=float, default=TIME_LIMIT_S, help="seconds after which no request starts")
    p.add_argument("--endpoint", default="/predict", choices=("/predict", "/v1/chat/completions"))
    args = p.parse_args(argv)
    check_loopback(args.url)
    from helpers.notebook import quiet

    quiet()  # before the training helpers load the libraries: no library notices beside the JSON report
    from helpers.training import load_split

    complaints = [row["instruction"] for row in load_split("test")]
    report = _summary(load_test(args.url, complaints, args.requests, args.concurrency, args.time_limit,
                                endpoint=args.endpoint))
    print(json.dumps(report))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
