"""The two databases the store runs on: a SQLite file and a PostgreSQL server, behind one small dialect object.

The store's SQL is written once, in SQLite's spelling with ``?`` placeholders; :class:`PostgreSQL` translates it
(placeholders; in migrations also column types and SQLite's implicit ``rowid``) and supplies the few fragments that
differ (JSON arrays, string aggregation, full-text search). Each dialect opens its connections, keeps the schema
version (``PRAGMA user_version`` in SQLite, a ``schema_version`` table in PostgreSQL) and starts write
transactions: SQLite's ``BEGIN IMMEDIATE`` takes the file's one write lock, PostgreSQL takes one transaction-level
advisory lock, so writers in every process on every machine take turns exactly as SQLite's do.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from ..errors import StoreError

URL_SCHEMES = ("postgresql://", "postgres://")
WRITE_LOCK = 0x766F787761746368  # pg_advisory_xact_lock key of every voxwatch write transaction ("voxwatch")


class Connection(Protocol):
    """What the store's parts use of a connection: :class:`sqlite3.Connection`, or :class:`PgConnection`."""

    in_transaction: bool

    def execute(self, sql: str, args: Any = (), /) -> Any: ...

    def executemany(self, sql: str, rows: Any, /) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Migration:
    """A schema step whose statements differ between the databases: ``sql`` runs on both (see
    :mod:`voxwatch.store.core`), then ``sqlite`` on SQLite only, ``postgresql`` on PostgreSQL only."""

    sql: str
    sqlite: str = ""
    postgresql: str = ""


def is_url(db: str | Path) -> bool:
    """Whether ``db`` names a PostgreSQL server rather than a SQLite file."""
    return str(db).startswith(URL_SCHEMES)


def open_dialect(db: str | Path) -> SQLite | PostgreSQL:
    return PostgreSQL(str(db)) if is_url(db) else SQLite(Path(db))


def statements(script: str) -> list[str]:
    """A script's statements, split where SQLite would (a trigger's body stays whole)."""
    found, current = [], ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                found.append(current.strip())
            current = ""
    return found


def text_terms(text: str | None) -> list[tuple[str, bool]]:
    """A user's full-text search: each word (or ``"a phrase"``) that must occur, and whether it is a prefix
    (a trailing ``*``); search operators and punctuation are taken literally."""
    if text is None or not text.strip():
        return []
    terms = []
    for phrase, word in re.findall(r'"([^"]+)"|(\S+)', text):
        body = (phrase or word).replace('"', "")
        prefix = word.endswith("*") and len(word) > 1
        body = body.rstrip("*") if prefix else body
        if body:
            terms.append((body, prefix))
    return terms


def _wal(db: sqlite3.Connection, deadline: float) -> None:
    """Put the file in WAL mode. While another process opens or migrates the same new file, SQLite refuses the switch
    at once ("database is locked": its busy timeout does not cover it), so it is tried again until ``deadline``."""
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SQLite:
    """A SQLite file (WAL; ``:memory:`` for a private, writer-only database). Deleted rows are overwritten
    (``secure_delete``), so a forgotten voice leaves no bytes behind in the file."""

    name = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)
        self.readers = str(path) != ":memory:"  # an in-memory database has only its writer

    def connect(self, read_only: bool = False) -> sqlite3.Connection:
        if read_only:  # autocommit: a reader never holds a transaction open, so each read sees the latest commit
            uri = self.path.resolve().as_uri() + "?mode=ro"
            return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
        if self.readers:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        _wal(db, deadline=time.monotonic() + 30)
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")
        return db

    def begin(self, db: Connection) -> None:
        db.execute("BEGIN IMMEDIATE")

    @staticmethod
    def fetch(db: Connection, sql: str, args: tuple, bulk: bool) -> list[tuple]:  # type: ignore[type-arg]
        """A read's rows; ``bulk``: many large values (PostgreSQL streams those)."""
        return db.execute(sql, args).fetchall()  # type: ignore[no-any-return]

    def schema_version(self, db: Connection) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, db: Connection, version: int) -> None:
        db.execute(f"PRAGMA user_version = {int(version)}")

    def migration(self, step: str | Migration) -> list[str]:
        return statements(step) if isinstance(step, str) else statements(step.sql) + statements(step.sqlite)

    # -- fragments --------------------------------------------------------------------------------------------------

    @staticmethod
    def json_values(column: str) -> str:
        """A table of the strings in a JSON array column, as column ``value``."""
        return f"json_each({column})"

    @staticmethod
    def json_array(column: str) -> str:
        """The aggregate of a column's values as a JSON array (``[]`` for none)."""
        return f"json_group_array({column})"

    @staticmethod
    def joined(column: str) -> str:
        """The aggregate of a column's strings joined by the unit separator ``\\x1f``."""
        return f"GROUP_CONCAT({column}, char(31))"

    @staticmethod
    def text_match(alias: str, text: str | None) -> tuple[str, str] | None:
        """A WHERE clause on the ``transcripts`` row ``alias`` and its argument: every term of ``text`` occurs."""
        terms = [f'"{body}"' + ("*" if prefix else "") for body, prefix in text_terms(text)]
        if not terms:
            return None
        return f"{alias}.rowid IN (SELECT rowid FROM transcript_words WHERE transcript_words MATCH ?)", " ".join(terms)

    @staticmethod
    def scrub_text_index(db: Connection) -> None:
        """After deleting transcripts: rewrite the FTS5 index so that none of their words remain in its pages."""
        db.execute("INSERT INTO transcript_words (transcript_words) VALUES ('optimize')")


class PgConnection:
    """A psycopg connection that runs the store's SQL (``?`` placeholders); results are tuples, read in binary."""

    def __init__(self, conn: Any):
        self._conn = conn
        self._types: dict[str, list[int]] = {}  # the column types of each query read by copy_rows

    def execute(self, sql: str, args: Any = (), /) -> Any:
        cursor = self._conn.cursor(binary=True)
        cursor.execute(_placeholders(sql), tuple(args))
        return cursor

    def executemany(self, sql: str, rows: Any, /) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(_placeholders(sql), list(rows))

    def copy_rows(self, sql: str, args: tuple) -> list[tuple]:  # type: ignore[type-arg]
        """A read's rows streamed by binary ``COPY``: no hex encoding, no result buffered whole in libpq."""
        query = _placeholders(sql)
        types = self._types.get(query)
        with self._conn.cursor(binary=True) as cursor:
            if types is None:
                cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0", args)
                types = self._types[query] = [column.type_code for column in cursor.description]
            # without arguments psycopg leaves a COPY's text alone: the %% escapes only go with arguments
            with cursor.copy(f"COPY ({query if args else sql}) TO STDOUT (FORMAT BINARY)", args or None) as copy:
                copy.set_types(types)
                return list(copy.rows())

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return not self.broken and self._conn.info.transaction_status != TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        return bool(self._conn.broken or self._conn.closed)

    def close(self) -> None:
        self._conn.close()


@lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgreSQL:
    """A PostgreSQL database, ``postgresql://user:password@host:port/dbname`` (psycopg 3). Deleted rows stay in
    their pages until VACUUM reclaims them; PostgreSQL has no ``secure_delete`` and voxwatch needs none there: a
    forgotten voice is gone from every query at commit, and the server's disk is the operator's to protect."""

    name = "postgresql"
    readers = True

    def __init__(self, url: str):
        self.url = url
        parts = urlsplit(url)
        self.where = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query=""))  # no password, no options
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError(
                f"{self.where}: PostgreSQL needs psycopg; install the extra: pip install 'voxwatch[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def connect(self, read_only: bool = False) -> PgConnection:
        try:
            conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            password = urlsplit(self.url).password
            if password:
                reason = reason.replace(password, "***")
            raise StoreError(
                f"{self.where}: cannot connect to the PostgreSQL server ({reason}); check the address, the user and that it runs"
            ) from None
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
        return PgConnection(conn)

    @staticmethod
    def fetch(db: PgConnection, sql: str, args: tuple, bulk: bool) -> list[tuple]:  # type: ignore[type-arg,override]
        return db.copy_rows(sql, args) if bulk else db.execute(sql, args).fetchall()  # type: ignore[no-any-return]

    def begin(self, db: Connection) -> None:
        db.execute("BEGIN")
        db.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))

    def schema_version(self, db: Connection) -> int:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            db.execute("INSERT INTO schema_version (version) VALUES (0)")
        return int(row[0]) if row else 0

    def set_schema_version(self, db: Connection, version: int) -> None:
        db.execute("UPDATE schema_version SET version = ?", (version,))

    def migration(self, step: str | Migration) -> list[str]:
        if isinstance(step, str):
            return [_table(s) for s in statements(step)]
        return [_table(s) for s in statements(step.sql)] + statements(step.postgresql)

    # -- fragments (see SQLite's for what each is) ------------------------------------------------------------------

    @staticmethod
    def json_values(column: str) -> str:
        return f"jsonb_array_elements_text({column}::jsonb)"

    @staticmethod
    def json_array(column: str) -> str:
        return f"COALESCE(json_agg({column}), '[]')::text"

    @staticmethod
    def joined(column: str) -> str:
        return f"string_agg({column}, chr(31))"

    @staticmethod
    def text_match(alias: str, text: str | None) -> tuple[str, str] | None:
        terms = []
        for body, prefix in text_terms(text):
            words = [f"'{w}'" for w in re.findall(r"\w+", body.lower())]
            if words:
                words[-1] += ":*" if prefix else ""
                terms.append("(" + " <-> ".join(words) + ")")
        if not terms:
            return None
        return f"{alias}.words @@ to_tsquery('simple', ?)", " & ".join(terms)

    @staticmethod
    def scrub_text_index(db: Connection) -> None:
        """Nothing to do: the words are a generated column of the deleted rows (their GIN entries go at VACUUM)."""


_TYPES = [
    (re.compile(r"\bINTEGER PRIMARY KEY(?! REFERENCES)"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
]


def _table(statement: str) -> str:
    """A migration statement in PostgreSQL's types; a new table without an integer key gets SQLite's implicit
    ``rowid`` (the order rows were added in) as an identity column."""
    if re.match(r"CREATE TABLE \w+ \(", statement) and "INTEGER PRIMARY KEY" not in statement:
        statement = statement.replace("(", "(rowid BIGINT GENERATED ALWAYS AS IDENTITY, ", 1)
    for pattern, replacement in _TYPES:
        statement = pattern.sub(replacement, statement)
    return statement
