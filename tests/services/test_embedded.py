"""The embedded servers start, keep their data, stop on exit and are reused on the next start."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    import asyncpg
    from redis import Redis
    from saldo.embedded import ensure_servers

    servers = ensure_servers(None, None, Path(sys.argv[1]))

    async def touch_db():
        conn = await asyncpg.connect(servers.database_url)
        await conn.execute("CREATE TABLE IF NOT EXISTS visits (n int)")
        await conn.execute("INSERT INTO visits VALUES (1)")
        count = await conn.fetchval("SELECT count(*) FROM visits")
        await conn.close()
        return count

    visits = asyncio.run(touch_db())
    redis = Redis.from_url(servers.redis_url)
    hits = redis.incr("hits")
    redis.save()
    redis.close()
    print(json.dumps({"visits": visits, "hits": hits, "db": servers.database_url,
                      "redis": servers.redis_url}))
    """
)


def _run(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_servers_keep_data_and_stop_on_exit(tmp_path):
    first = _run(tmp_path)
    assert first["db"].startswith("postgresql://")
    assert first["redis"].startswith("unix://")
    assert not (tmp_path / "pg" / "postmaster.pid").exists(), "PostgreSQL still running after exit"
    assert not Path(first["redis"].removeprefix("unix://")).exists(), "Redis still running"

    second = _run(tmp_path)
    assert second["visits"] == 2
    assert second["hits"] == 2
    assert not (tmp_path / "pg" / "postmaster.pid").exists()
