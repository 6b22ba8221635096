"""Load on a shared server: N simultaneous sessions opening pages whose results are cached.

    .venv/bin/python bench/load.py [--quick] [--sessions 1,4,8] [--pages features,affect,similarity,explore]

Starts `streamlit run app.py` on 127.0.0.1 only (a free port; nothing else is contacted) with a fresh
REPSCOPE_CACHE, extracts the sidebar's default encoders on the demo (`python -m core extract`), and opens
every page once in one session (the warm-up computes and stores what the pages cache). Then, for each N,
N websocket sessions (what a browser tab opens) open the pages one after another, all at once; a page's
time runs from the request to its script's successful end. It prints p50 / p95 page time, the ratio of p50
to the p50 of the first N (1 by default: one session alone, the baseline measured in the same run), the server's peak RSS, the number of
exceptions the pages raised, and whether every stored result is still there and readable afterwards.
Bounded: at most 16 sessions, 180 s per page.

`--quick` (a check that the bench runs, in seconds; its ratio is 1 by construction): the same real server on
127.0.0.1, one session (N = 1) opening the features and explore pages, with pixels:32 and pixels:8 instead of
the sidebar's default CNN (extracted beforehand, and chosen by the pages' `?encoder=` link, as a shared URL does);
--sessions / --pages still apply. The cache is a temporary folder, as always.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.stores import Stores  # noqa: E402

DEFAULT_ENCODERS = ("bundled:efficientnet_lite0", "pixels:32")  # views/ui/sidebar.py DEFAULT_ENCODERS
QUICK = {"sessions": "1", "pages": "features,explore", "encoders": ("pixels:32", "pixels:8")}
MAX_SESSIONS = 16
PAGE_TIMEOUT_S = 180
SUCCESS = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_SUCCESSFULLY")
COMPILE_ERROR = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_WITH_COMPILE_ERROR")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def open_page(session, page: str, query: str = "") -> tuple[float, int]:
    """(seconds until the page's script finished successfully, exceptions it showed); `query`: the URL's query."""
    message = BackMsg()
    message.rerun_script.page_name = page
    message.rerun_script.query_string = query
    started = time.perf_counter()
    await session.send(message.SerializeToString())
    exceptions = 0
    while True:
        forward = ForwardMsg()
        forward.ParseFromString(await asyncio.wait_for(session.recv(), PAGE_TIMEOUT_S))
        kind = forward.WhichOneof("type")
        if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
            exceptions += forward.delta.new_element.WhichOneof("type") == "exception"
        if kind == "script_finished" and forward.script_finished in (SUCCESS, COMPILE_ERROR):
            return time.perf_counter() - started, exceptions + (forward.script_finished == COMPILE_ERROR)


async def session_walk(port: int, pages: list[str], query: str = "") -> list[tuple[float, int]]:
    async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None) as session:
        return [await open_page(session, page, query) for page in pages]


async def concurrent_walks(port: int, pages: list[str], sessions: int, server_pid: int,
                           query: str = "") -> tuple[list, float]:
    """Every session's (seconds, exceptions) per page, and the server's peak RSS (MB) while they ran."""
    peak = rss_mb(server_pid)
    walks = asyncio.gather(*(session_walk(port, pages, query) for _ in range(sessions)))
    while not walks.done():
        await asyncio.sleep(0.2)
        peak = max(peak, rss_mb(server_pid))
    return [result for walk in await walks for result in walk], peak


def wait_for_port(port: int, server: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"no server on 127.0.0.1:{port} after {timeout_s} s")


def stored_results(cache: Path) -> set[tuple[str, str]]:
    """(kind, key) of every readable stored result."""
    store = Stores.at(cache).results
    return {(meta["kind"], meta["key"]) for meta in store.entries() if store.get(meta["kind"], meta["key"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default=None, help="comma-separated session counts (at most 16; default "
                                                         f"1,4,8, quick {QUICK['sessions']})")
    parser.add_argument("--pages", default=None, help="page URL names (features is the default page; default "
                                                      f"features,affect,similarity,explore, quick {QUICK['pages']})")
    parser.add_argument("--quick", action="store_true", help="one session, two pages, pixels:32 and pixels:8 "
                                                             "instead of the CNN: checks that the bench runs")
    args = parser.parse_args()
    args.sessions = args.sessions or (QUICK["sessions"] if args.quick else "1,4,8")
    args.pages = args.pages or (QUICK["pages"] if args.quick else "features,affect,similarity,explore")
    extracted = QUICK["encoders"] if args.quick else DEFAULT_ENCODERS
    query = urlencode([("encoder", spec) for spec in extracted]) if args.quick else ""  # default: the sidebar's
    counts = [int(count) for count in args.sessions.split(",")]
    if max(counts) > MAX_SESSIONS:
        raise SystemExit(f"at most {MAX_SESSIONS} sessions")
    pages = ["" if page == "features" else page for page in args.pages.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        environment = {**os.environ, "REPSCOPE_CACHE": str(cache)}
        encoders = [argument for spec in extracted for argument in ("--encoder", spec)]
        subprocess.run([sys.executable, "-m", "core", "extract", "--dataset", "demo", *encoders], cwd=ROOT,
                       env=environment, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, server)
            warm, _ = asyncio.run(concurrent_walks(port, pages, 1, server.pid, query))
            print(f"warm-up (computes and stores): {sum(seconds for seconds, _ in warm):.1f} s over {len(pages)} pages, "
                  f"{sum(errors for _, errors in warm)} exceptions; server RSS {rss_mb(server.pid):.0f} MB")
            before = stored_results(cache)
            baseline = None
            for count in counts:
                results, peak = asyncio.run(concurrent_walks(port, pages, count, server.pid, query))
                seconds = np.array([value for value, _ in results])
                p50, p95 = np.percentile(seconds, [50, 95])
                baseline = baseline or p50
                print(f"N = {count:2d}: p50 {p50:6.2f} s  p95 {p95:6.2f} s  p50 / p50 at N = {counts[0]} "
                      f"{p50 / baseline:5.2f}  page loads {len(seconds)}  exceptions "
                      f"{sum(errors for _, errors in results)}  peak server RSS {peak:.0f} MB")
            after = stored_results(cache)
            print(f"stored results: {len(before)} before, {len(after)} after, lost {len(before - after)}")
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:  # still busy with a session's rerun: stop it hard
                server.kill()
                server.wait(15)


if __name__ == "__main__":
    main()
