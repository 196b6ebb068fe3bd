"""Hot statements straight on SQLite's own cursor.

SQLAlchemy's execution (its context, parameter and result handling) costs
several times what sqlite3's cursor costs for the same one-row SELECT
(BENCHMARKS.md), and a worker's group of sends runs six statements. Here a
Core statement is compiled by SQLAlchemy once per shape (the number of
values in each IN list) and then run on the driver cursor of the connection
in hand, inside its transaction, with the statement's own parameter and
result types applied. Other drivers (PostgreSQL; aiosqlite's adapter) run
the same statement through SQLAlchemy as usual, so both paths give the
same rows; the storage contract tests run both.

A statement's compiled shapes are kept on the statement itself, not on a
database: they depend only on the statement and SQLite's dialect, which
are the same for every SQLite database a process opens, so a second
Database (a test, the bench) finds them ready. `_DEFINED` lists the
statements the storage modules define (constants, like the tables), so
that a Database's first reader thread can compile them (`warm_up`); it
holds no per-database state."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError

Processor = Callable[[Any], Any] | None


class _Shape:
    """One compiled form: SQL, where each parameter goes, how it is typed."""

    def __init__(
        self,
        statement: Any,
        dialect: Dialect,
        sizes: Mapping[str, int],
        columns: Sequence[str] | None,
    ) -> None:
        if sizes:
            statement = statement.params({name: [None] * n for name, n in sizes.items()})
        compiled = statement.compile(
            dialect=dialect,
            column_keys=list(columns) if columns is not None else None,
            compile_kwargs={"render_postcompile": True},
        )
        self.sql = compiled.string
        # (parameter name, index into its list or None, bind processor, the
        # statement's own value for parameters the caller does not give)
        self.slots: list[tuple[str, int | None, Processor, Any]] = []
        for position in compiled.positiontup or ():
            name, index = position, None
            base, _, number = position.rpartition("_")
            if base in sizes and number.isdigit():
                name, index = base, int(number) - 1
            bind = compiled.binds[name] if name in compiled.binds else compiled.binds[position]
            own = None if bind.callable else bind.value
            typed = bind.type.dialect_impl(dialect)  # the type as this database stores it
            self.slots.append((name, index, typed.bind_processor(dialect), own))
        # A SELECT's columns, or an INSERT/UPDATE's RETURNING ones (public API).
        returned: Any = statement.exported_columns
        processors = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in returned
        ]
        # (column index, processor) for the columns that need one
        self.typed_columns = [(i, p) for i, p in enumerate(processors) if p is not None]

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, index, process, own in self.slots:
            if index is not None:
                values = params[name]  # padded up to the shape's size with its last value
                value = values[index] if index < len(values) else values[-1]
            else:
                value = params[name] if name in params else own
            out.append(value if process is None else process(value))
        return tuple(out)

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        """Typed values for the columns that need it (timestamps on SQLite);
        the rest are as the driver gave them."""
        if not self.typed_columns:
            return raw
        out = []
        for row in raw:
            typed = list(row)
            for i, process in self.typed_columns:
                typed[i] = process(typed[i])
            out.append(typed)
        return out


# IN lists are padded to the next power of two (repeating their last value,
# which changes no answer), so a statement has a handful of shapes, not
# one per list length; the common ones are compiled as the threads start.
WARM_UP_TO = 8


def _bucket(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else n


def warm_up(dialect: Dialect) -> None:
    for statement in list(_DEFINED):
        statement.warm(dialect)


class FastStatement:
    """A Core statement that runs on sqlite3's cursor when it can."""

    def __init__(
        self,
        statement: Any,
        expanding: Sequence[str] = (),
        columns: Sequence[str] | None = None,
    ) -> None:
        """`expanding`: the names of its IN-list parameters; `columns`: for
        an INSERT, the columns each row gives."""
        self.statement = statement
        self._expanding = tuple(expanding)
        self._columns = tuple(columns) if columns is not None else None
        self._shapes: dict[tuple[int, ...], _Shape] = {}
        _DEFINED.append(self)

    def _shape(self, dialect: Dialect, params: Mapping[str, Any]) -> _Shape:
        return self._sized(dialect, tuple(_bucket(len(params[n])) for n in self._expanding))

    def _sized(self, dialect: Dialect, sizes: tuple[int, ...]) -> _Shape:
        shape = self._shapes.get(sizes)
        if shape is None:
            named = dict(zip(self._expanding, sizes, strict=True))
            shape = _Shape(self.statement, dialect, named, self._columns)
            self._shapes[sizes] = shape
        return shape

    def warm(self, dialect: Dialect, largest: int = WARM_UP_TO) -> None:
        """Compiles the shapes a small group needs (off the event loop: each
        takes about a millisecond)."""
        sizes = [1 << k for k in range(largest.bit_length())]
        by_count: dict[int, list[tuple[int, ...]]] = {
            0: [()],
            1: [(n,) for n in sizes],
            2: [(a, b) for a in sizes for b in sizes if a == b or 1 in (a, b)],
        }
        for shape in by_count.get(len(self._expanding), []):
            self._sized(dialect, shape)

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """The rows, as tuples in the statement's column order."""
        cursor = _sqlite_cursor(conn)
        if cursor is None:
            return list(conn.execute(self.statement, dict(params)).all())
        shape = self._shape(conn.dialect, params)
        with _as_sqlalchemy_errors(cursor, shape.sql, params):
            return shape.rows(cursor.execute(shape.sql, shape.args(params)).fetchall())

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """executemany: the same statement for each row (no IN lists)."""
        if not rows:
            return
        cursor = _sqlite_cursor(conn)
        if cursor is None:
            conn.execute(self.statement, [dict(r) for r in rows])
            return
        shape = self._shape(conn.dialect, rows[0])
        with _as_sqlalchemy_errors(cursor, shape.sql, rows):
            cursor.executemany(shape.sql, [shape.args(r) for r in rows])


_DEFINED: list[FastStatement] = []


def _sqlite_cursor(conn: Connection) -> sqlite3.Cursor | None:
    raw = conn.connection.dbapi_connection
    return raw.cursor() if isinstance(raw, sqlite3.Connection) else None


@contextmanager
def _as_sqlalchemy_errors(cursor: sqlite3.Cursor, sql: str, params: Any) -> Iterator[None]:
    """Closes the cursor; raises the exception classes SQLAlchemy raises
    (IntegrityError...), so callers catch one kind whichever path ran."""
    try:
        yield
    except sqlite3.Error as error:
        raise DBAPIError.instance(sql, params, error, sqlite3.Error) from error
    finally:
        cursor.close()


__all__ = ["FastStatement", "warm_up"]
