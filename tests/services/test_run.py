"""`saldo run` from an empty data directory: embedded servers, migrations, demo, web, worker."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_saldo_run_serves_readyz_within_a_minute_and_stops_everything(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(SALDO_DATA_DIR=str(tmp_path), PORT=str(port), PUBLIC_URL=f"http://127.0.0.1:{port}")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "saldo", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status = None
        while time.monotonic() - started < 60 and proc.poll() is None:
            try:
                status, body = get(f"http://127.0.0.1:{port}/readyz")
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.3)
        assert status == 200, "readyz did not answer 200 within a minute"
        assert b'"database":"ok"' in body.replace(b" ", b"")
        landing_status, landing = get(f"http://127.0.0.1:{port}/")
        assert landing_status == 200 and b"Saldo" in landing
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert "Demo portfolio loaded" in output
    assert "maria.nunez@example.com" in output
    assert proc.returncode == 0, output[-2000:]
    assert not (tmp_path / "pg" / "postmaster.pid").exists(), "PostgreSQL left running"
