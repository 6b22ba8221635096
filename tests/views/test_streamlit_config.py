"""`.streamlit/config.toml`: the served app puts no inotify watch on .venv/ or cache/ and watches no file (a
watcher costs every rerun), and a developer who turns the polling watcher on is offered the rerun after a source
edit. Each test starts a real `streamlit run` and opens a session over its websocket."""
from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect

from tests.paths import REPO_ROOT as ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="counts inotify watches via /proc")


def inotify_watches(pid: int) -> int:
    """Inotify watches the process holds, over all its inotify descriptors."""
    count = 0
    for descriptor in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            count += sum(line.startswith("inotify wd:") for line in descriptor.read_text().splitlines())
        except OSError:  # a descriptor closed meanwhile
            continue
    return count


@asynccontextmanager
async def served(folder: Path, cache: Path, *options: str):
    """`streamlit run app.py` in `folder` (so its .streamlit/config.toml applies), one session open."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", *options],
        cwd=folder, env={"PATH": "/usr/bin:/bin", "REPSCOPE_CACHE": str(cache)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                           max_size=None) as session:
            yield server, session
    finally:
        server.terminate()
        server.wait(15)


async def watches_with_a_session_open(*options: str) -> int:
    # The session registers its file watchers when it opens; 2 s is ample for that.
    async with served(ROOT, ROOT / "cache", *options) as (server, _):
        await asyncio.sleep(2.0)
        return inotify_watches(server.pid)


def test_the_served_app_puts_no_inotify_watch_on_its_folder() -> None:
    """Watchdog, Streamlit's default, watches app.py's folder recursively: .venv/, cache/, .git/ and all."""
    if (ROOT / ".venv").is_dir():  # the baseline's size comes from a venv inside the repo, as `make` builds it
        assert asyncio.run(watches_with_a_session_open("--server.fileWatcherType", "watchdog")) > 1000  # 3310
    assert asyncio.run(watches_with_a_session_open()) == 0


async def rerun_then_edit(folder: Path, module: Path, *options: str) -> ForwardMsg | None:
    """The server's first session event after `module` (imported by the app) is edited; None if none comes."""
    async with served(folder, folder / "cache", *options) as (_, session):
        message = BackMsg()
        message.rerun_script.query_string = ""
        await session.send(message.SerializeToString())
        while (await next_message(session)).WhichOneof("type") != "script_finished":  # the run watches the import
            pass
        module.write_text(module.read_text() + "X = 2\n")
        try:
            while (event := await next_message(session, 5)).WhichOneof("type") != "session_event":
                pass
        except TimeoutError:
            return None
        return event


async def next_message(session, timeout_s: float = 20) -> ForwardMsg:
    forward = ForwardMsg()
    forward.ParseFromString(await asyncio.wait_for(session.recv(), timeout_s))
    return forward


def test_a_source_edit_offers_the_rerun_with_the_polling_watcher_a_developer_turns_on(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import streamlit as st\nimport helper\nst.write(helper.X)\n")
    helper = tmp_path / "helper.py"
    helper.write_text("X = 1\n")
    shutil.copytree(ROOT / ".streamlit", tmp_path / ".streamlit")
    assert asyncio.run(rerun_then_edit(tmp_path, helper)) is None  # served: no watcher, no per-rerun cost
    helper.write_text("X = 1\n")
    event = asyncio.run(rerun_then_edit(tmp_path, helper, "--server.fileWatcherType", "poll"))
    assert event is not None and event.session_event.script_changed_on_disk
