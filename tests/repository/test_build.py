"""What the repository ships besides code: generated API code that matches
crab.proto, migrations that match the schema, a sound Dockerfile."""

from __future__ import annotations

import filecmp
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crab.core.storage import search
from crab.core.storage.database import Database
from crab.core.storage.tables import metadata

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "crab" / "proto"


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    """Fails when crab.proto changed without `make proto`."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO}",
            f"--python_betterproto2_out={tmp_path}",
            "--python_betterproto2_opt=client_generation=async,server_generation=async",
            f"--descriptor_set_out={tmp_path / 'crab.desc'}",
            "--include_imports",
            str(PROTO / "crab.proto"),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "protoc generated nothing"
    stale = [str(p) for p in generated if not filecmp.cmp(tmp_path / p, PROTO / p, shallow=False)]
    assert not stale, f"run `make proto`: stale generated files {stale}"


async def test_migrations_create_exactly_the_schema(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await database.migrate()
    await database.migrate()  # idempotent: every start runs it

    def diff(conn: sa.Connection) -> list[object]:
        # The full-text index (migration 0004) is not in tables.py: only it is skipped.
        options = {"include_name": search.in_tables_py}
        return list(compare_metadata(MigrationContext.configure(conn, opts=options), metadata))

    assert await database.read(diff) == []
    await database.close()


def test_schema_head_constant_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from crab.core.storage.database import MIGRATIONS, SCHEMA_HEAD

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = dockerfile.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, args = line.partition(" ")
            out.append((op.upper(), args.strip()))
    return out


def test_dockerfile_runs_crab_serve_as_non_root_with_data_volume() -> None:
    steps = _instructions(ROOT / "Dockerfile")
    ops = [op for op, _ in steps]
    assert ops[0] == "FROM" and "python:3.11" in steps[0][1]
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the container must not run as root"
    assert ops.index("USER") < ops.index("CMD")
    volumes = " ".join(args for op, args in steps if op == "VOLUME")
    assert "/data" in volumes
    env = " ".join(args for op, args in steps if op == "ENV")
    assert "CRAB_DATA_DIR=/data" in env
    health = [args for op, args in steps if op == "HEALTHCHECK"]
    assert health and "crab.healthcheck" in health[0]
    (cmd,) = [args for op, args in steps if op == "CMD"]
    argv = json.loads(cmd)
    assert argv[:2] == ["crab", "serve"] and "0.0.0.0" in argv
    for op, args in steps:
        if op in ("COPY", "ADD"):
            for src in shlex.split(args)[:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_healthcheck_module_reports_down_server() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crab.healthcheck", "127.0.0.1:1"], capture_output=True
    )
    assert result.returncode == 1


async def test_healthcheck_module_reports_serving(crab: object) -> None:
    from crab.core.app import Crab
    from crab.healthcheck import check

    assert isinstance(crab, Crab)
    assert await check("127.0.0.1", crab.port)


def test_readme_lists_every_limit_with_its_option_env_and_default() -> None:
    from crab.cli import LIMIT_FIELDS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for f in LIMIT_FIELDS:
        row = f"| `--{f.name.replace('_', '-')}` | `CRAB_{f.name.upper()}` | {f.default} |"
        assert row in readme, f"README's limits table is missing {row!r}"
