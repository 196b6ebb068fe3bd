"""Which schemas this crab accepts (storage/database.py): its own
revisions, read from the migrations' file names, must be alembic's; an
older one is migrated, a newer or foreign one refused with a message."""

from __future__ import annotations

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from crab.core.storage.database import (
    MIGRATIONS,
    SCHEMA_HEAD,
    UnknownSchema,
    check_known,
    known_revisions,
)


def test_known_revisions_are_alembics_oldest_first() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    walked = [s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()]
    assert known_revisions() == walked[::-1]
    assert known_revisions()[0] == "0001" and known_revisions()[-1] == SCHEMA_HEAD


def test_every_known_revision_is_accepted() -> None:
    for revision in known_revisions():
        check_known(revision)


def test_a_newer_schema_is_refused_naming_both() -> None:
    newer = f"{int(SCHEMA_HEAD) + 1:04d}"
    with pytest.raises(UnknownSchema) as refused:
        check_known(newer)
    assert str(refused.value) == (
        f"this database was made by a newer crab (schema {newer}; this crab knows up to "
        f"{SCHEMA_HEAD}): run that crab, or restore a backup made by this one"
    )


@pytest.mark.parametrize("foreign", ["ae1027a6acf", "", "0000", "head"])
def test_a_schema_crab_never_made_is_refused(foreign: str) -> None:
    with pytest.raises(UnknownSchema, match="is not one crab made"):
        check_known(foreign)
