"""Browser tests: Saldo served by uvicorn in its own process on loopback, driven by Playwright
with Debian's Chromium (`/usr/bin/chromium`). A missing browser fails the run, never skips it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.smtp_sink import SmtpSink

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVE = (
    "import sys, uvicorn\n"
    "from saldo.app import create_app\n"
    "uvicorn.run(create_app(redis_prefix=sys.argv[2]), host='127.0.0.1', port=int(sys.argv[1]),"
    " log_level='warning')\n"
)
# The arq worker for the live server's queue (same Redis prefix), run until terminated.
WORK = (
    "import sys\n"
    "from saldo.worker import build_worker\n"
    "build_worker(sys.argv[1], sys.argv[2]).run()\n"
)


@dataclass(frozen=True)
class LiveServer:
    url: str
    smtp: SmtpSink
    env: dict[str, str] = field(default_factory=dict)  # the web process's environment
    redis_prefix: str = ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the web process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url}/readyz did not answer 200 within {seconds} s")


@pytest.fixture(scope="session")
def live_server(servers, tmp_path_factory) -> Iterator[LiveServer]:
    smtp = SmtpSink().start()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        DATABASE_URL=servers.database_url,
        REDIS_URL=servers.redis_url,
        SMTP_URL=smtp.url,
        PUBLIC_URL=url,
        SALDO_DATA_DIR=str(tmp_path_factory.mktemp("e2e-data")),
    )
    prefix = f"{servers.redis_prefix}e2e:"
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port), prefix], env=env)
    try:
        _wait_ready(url, proc)
        yield LiveServer(url, smtp, env, prefix)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        smtp.stop()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)", pytrace=False)
    return path


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


@pytest.fixture
def live_worker(live_server: LiveServer) -> Iterator[Callable[[], None]]:
    """Call it to start an arq worker (its own process, the web process's environment) on the
    live server's queue; it is stopped when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        if not started:
            started.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        WORK,
                        live_server.env["REDIS_URL"],
                        live_server.redis_prefix,
                    ],
                    env=live_server.env,
                )
            )

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=15)
