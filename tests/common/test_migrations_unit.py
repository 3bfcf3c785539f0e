from __future__ import annotations

import pytest

from npanel.common.migrations import (
    Migration,
    MigrationError,
    bundled_migrations,
    check_applied,
    parse_migrations,
)

pytestmark = pytest.mark.unit


def test_ordered_by_version() -> None:
    found = parse_migrations([("0002_b.sql", "B"), ("0001_a.sql", "A")])
    assert [m.filename for m in found] == ["0001_a.sql", "0002_b.sql"]


@pytest.mark.parametrize("name", ["1_a.sql", "0001-a.sql", "0001_A.sql", "0001_a.txt"])
def test_badly_named_file_is_refused(name: str) -> None:
    with pytest.raises(MigrationError, match=name):
        parse_migrations([(name, "")])


def test_duplicate_version_is_refused() -> None:
    with pytest.raises(MigrationError, match="share version 1"):
        parse_migrations([("0001_a.sql", ""), ("0001_b.sql", "")])


def test_edited_migration_is_refused() -> None:
    m = Migration(1, "a", "CREATE TABLE t ()")
    check_applied([m], {1: ("a", m.checksum)})
    with pytest.raises(MigrationError, match=r"0001_a\.sql was edited after it was applied"):
        check_applied([m], {1: ("a", "0" * 64)})


def test_bundled_migrations_are_well_formed() -> None:
    found = bundled_migrations()
    assert found[0].filename == "0001_audit_log.sql"
    assert [m.version for m in found] == sorted({m.version for m in found})
