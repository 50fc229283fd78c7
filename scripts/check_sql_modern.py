#!/usr/bin/env python3
"""Prove that Headcount's SQL also runs on a modern ClickHouse.

`make test` runs the Rust suite against the ClickHouse 18.16 that Debian
ships; production runs ClickHouse 24+. This script closes the gap without a
second server: PyPI's `chdb-core` embeds a current ClickHouse engine (26.x)
as a Python module. It

  1. creates a database `headcount` in a throw-away chdb session,
  2. applies sql/*.sql in filename order inside it (the migrations),
  3. runs every sql/queries/**/*.sql (dashboard queries) against that schema,
     with `?` placeholders replaced by sample literals,
  4. loads tests/data/events.native — three events exactly as Headcount's
     writer sends them (ClickHouse's Native format; a Rust unit test keeps
     the file in step with the writer) — into `events` and checks that
     every value and the rollups came through,

and exits 1 naming the file and statement on the first error.

File format (shared with the Rust migration runner): statements end with `;`
at the end of a line; lines starting with `--` are comments.

Placeholders follow the `clickhouse` crate's client-side binding: `?` is a
value, `??` a literal question mark, `?fields` the row's column list (checked
here as `*`). The SQL text does not say a value's type, so each `?` is tried
with a sample literal guessed from its context first (a number after LIMIT or
before SECOND, a date-time next to a time column, a string otherwise) and
then with the other samples; a statement fails only if no combination runs.
A query can pin its literals with a comment line right above it:
    -- check-params: 'example.com', '2024-01-01 00:00:00', 10

chdb-core is installed on first use into var/venv-chdb (cached between runs;
`make clean-data` leaves it alone). Usage:

    python3 scripts/check_sql_modern.py [--sql-dir DIR] [--venv DIR] [-v]
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO / "var" / "venv-chdb"
# Pinned so CI is reproducible; bump deliberately to follow ClickHouse.
CHDB_REQUIREMENT = os.environ.get("CHDB_REQUIREMENT", "chdb-core==26.9.0")
REEXEC_MARKER = "HEADCOUNT_CHDB_REEXEC"
DATABASE = "headcount"

# Sample literals for `?`. Queries run against empty tables, so only the
# types matter, not the values.
NUMBER = "1"
DATE = "'2024-01-01'"  # compares with Date and DateTime columns alike
DATETIME = "'2024-01-01 00:00:00'"
STRING = "'example.com'"
SAMPLES = (NUMBER, DATE, DATETIME, STRING)
MAX_COMBINATIONS = 1024  # 4**5; more placeholders get the first 1024 combinations


# --------------------------------------------------------------------------
# Getting a Python that can `import chdb`
# --------------------------------------------------------------------------


def chdb_importable(python: str) -> bool:
    probe = "from chdb import session; session.Session().query('SELECT 1', 'CSV')"
    result = subprocess.run(
        [python, "-c", probe],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return result.returncode == 0


def ensure_chdb(venv_dir: Path) -> None:
    """Return if chdb imports here; otherwise re-exec under the venv."""
    try:
        import chdb  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get(REEXEC_MARKER):
        sys.exit(f"check_sql_modern: chdb still not importable under {sys.executable}")

    python = venv_dir / "bin" / "python"
    if not (python.exists() and chdb_importable(str(python))):
        install_chdb(venv_dir, python)
    os.environ[REEXEC_MARKER] = "1"
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def install_chdb(venv_dir: Path, python: Path) -> None:
    print(
        f"check_sql_modern: installing {CHDB_REQUIREMENT} into {venv_dir} (once, ~550 MB)",
        file=sys.stderr,
        flush=True,
    )
    if not python.exists():
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
        except Exception as err:  # noqa: BLE001 - any failure gets the same hint
            sys.exit(
                f"check_sql_modern: cannot create a venv in {venv_dir}: {err}\n"
                "  (Debian's own python3 needs: apt-get install python3-venv)"
            )
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # chdb-core declares pandas and pyarrow, but plain SQL with text output
    # needs neither; skipping them saves ~300 MB. Fall back to the full
    # install if the lean one cannot run a query.
    subprocess.run([*pip, "--no-deps", CHDB_REQUIREMENT], check=True)
    if not chdb_importable(str(python)):
        subprocess.run([*pip, CHDB_REQUIREMENT], check=True)
    if not chdb_importable(str(python)):
        sys.exit(
            f"check_sql_modern: {CHDB_REQUIREMENT} installed but `import chdb` fails"
        )


# --------------------------------------------------------------------------
# Reading SQL files
# --------------------------------------------------------------------------


@dataclass
class Statement:
    path: Path
    line: int  # 1-based line of the statement's first line
    sql: str
    params: list[str] | None  # from a `-- check-params:` comment

    def where(self) -> str:
        try:
            rel = self.path.relative_to(REPO)
        except ValueError:
            rel = self.path
        return f"{rel}:{self.line}"


PARAMS_COMMENT = re.compile(r"^\s*--\s*check-params:\s*(.*)$")


def split_statements(path: Path) -> list[Statement]:
    """Split a file on `;` at end of line; drop `--` comment lines."""
    statements: list[Statement] = []
    lines: list[str] = []
    start = 0
    params: list[str] | None = None
    for number, raw in enumerate(
        path.read_text(encoding="utf-8").splitlines(), start=1
    ):
        match = PARAMS_COMMENT.match(raw)
        if match:
            params = split_params(match.group(1))
            continue
        if raw.lstrip().startswith("--"):
            continue
        if not lines and not raw.strip():
            continue
        if not lines:
            start = number
        lines.append(raw)
        if raw.rstrip().endswith(";"):
            sql = "\n".join(lines).rstrip()[:-1].strip()
            if sql:
                statements.append(Statement(path, start, sql, params))
            lines, params = [], None
    tail = "\n".join(lines).strip()
    if tail:  # last statement without a trailing `;`
        statements.append(Statement(path, start, tail, params))
    return statements


def split_params(text: str) -> list[str]:
    """Split `'a,b', 2, 'c'` on top-level commas."""
    out, current, quoted = [], [], False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quoted and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    if "".join(current).strip():
        out.append("".join(current).strip())
    return out


# --------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------

# Quoted strings/identifiers and comments, where `?` is not a placeholder.
_SKIP = re.compile(
    r"'(?:[^'\\]|\\.|'')*'|`[^`]*`|\"[^\"]*\"|--[^\n]*|/\*.*?\*/", re.DOTALL
)
_TIME_WORDS = re.compile(
    r"(ts|time|date|day|hour|minute|from|to|since|until|start|end)\w*\W*$",
    re.IGNORECASE,
)
_NUMBER_BEFORE = re.compile(
    r"(limit|offset|interval|top|[*/%+-]|intDiv\s*\([^?]*,)\s*$", re.IGNORECASE
)
_NUMBER_AFTER = re.compile(
    r"^\s*(second|minute|hour|day|week|month|year)s?\b", re.IGNORECASE
)
_COMPARISON_END = re.compile(r"\s*(>=|<=|<>|!=|=|<|>|between|and)\s*$", re.IGNORECASE)
# `x BETWEEN <sample> AND ` (the first bound already filled in).
_BETWEEN_AND = re.compile(
    r"between\s+(" + "|".join(re.escape(x) for x in SAMPLES) + r")\s+and\s*$",
    re.IGNORECASE,
)


def template(sql: str) -> tuple[list[str], list[str]]:
    """Cut `sql` at its placeholders.

    Returns the text pieces (one more than placeholders) and a first-guess
    literal for each placeholder.
    """
    pieces: list[str] = []
    guesses: list[str] = []
    current: list[str] = []
    pos = 0
    while pos < len(sql):
        skip = _SKIP.match(sql, pos)
        if skip:
            current.append(skip.group(0))
            pos = skip.end()
            continue
        ch = sql[pos]
        if ch != "?":
            current.append(ch)
            pos += 1
            continue
        if sql.startswith("??", pos):
            current.append("?")
            pos += 2
            continue
        if sql.startswith("?fields", pos):
            current.append("*")
            pos += len("?fields")
            continue
        before = "".join(current)
        pieces.append(before)
        current = []
        # Context: the text so far with the earlier guesses filled in.
        guesses.append(guess(fill(pieces, guesses), sql[pos + 1 :]))
        pos += 1
    pieces.append("".join(current))
    return pieces, guesses


def guess(before: str, after: str) -> str:
    tail = before[-60:]
    if _NUMBER_BEFORE.search(tail) or _NUMBER_AFTER.match(after):
        return NUMBER
    # `x BETWEEN <literal> AND ?`: the same kind as the first bound.
    between = _BETWEEN_AND.search(tail)
    if between:
        return between.group(1)
    if re.search(r"toDateTime\s*\(\s*$", tail, re.IGNORECASE):
        return DATETIME
    if _TIME_WORDS.search(_COMPARISON_END.sub("", tail)):
        return DATE
    return STRING


def candidates(stmt: Statement) -> list[str]:
    """Concrete SQL texts to try for a statement, best guess first."""
    pieces, guesses = template(stmt.sql)
    if not guesses:
        return [pieces[0]]
    if stmt.params is not None:
        if len(stmt.params) != len(guesses):
            raise ValueError(
                f"check-params lists {len(stmt.params)} values, "
                f"statement has {len(guesses)} placeholders"
            )
        return [fill(pieces, stmt.params)]
    options = [[g, *(s for s in SAMPLES if s != g)] for g in guesses]
    combos = itertools.product(*options)
    return [fill(pieces, combo) for combo in itertools.islice(combos, MAX_COMBINATIONS)]


def fill(pieces: list[str], values) -> str:
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:]):
        out.append(value)
        out.append(piece)
    return "".join(out)


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


class Failure(Exception):
    pass


def run(session, stmt: Statement, verbose: bool) -> None:
    try:
        texts = candidates(stmt)
    except ValueError as err:
        raise Failure(f"{stmt.where()}: {err}\n{indent(stmt.sql)}") from None
    first_error = None
    for text in texts:
        try:
            session.query(text, "CSV")
        except Exception as err:  # noqa: BLE001 - chdb raises ChdbError/RuntimeError
            if first_error is None:
                first_error = (text, err)
            continue
        if verbose:
            print(f"  ok {stmt.where()}")
        return
    text, err = first_error
    tried = f" (tried {len(texts)} sets of sample literals)" if len(texts) > 1 else ""
    raise Failure(
        f"{stmt.where()}: statement fails on ClickHouse {engine_version(session)}{tried}\n"
        f"{indent(text)}\n"
        f"error: {first_line(err)}"
    )


NATIVE_SAMPLE = REPO / "tests" / "data" / "events.native"
# What the sample holds (src/store/writer.rs, the_native_sample_is_what_the_writer_sends).
NATIVE_CHECK = (
    "SELECT count(), arrayStringConcat(groupArray(concat(toString(batch_row), ':', name, ':', browser, ':', "
    "city, ':', pathname, ':', arrayStringConcat(prop_keys, ','), '=', arrayStringConcat(prop_values, ','), ':', "
    "toString(toUnixTimestamp(ts)), ':', hex(visitor_id))), ' ') FROM (SELECT * FROM events ORDER BY batch_row)"
)
NATIVE_WANT = "3\t" + " ".join(
    [
        f"0:pageview:Chrome::/:=:1795000000:{'07' * 16}",
        f"1:Signup:Chrome:Москва:/pricing:plan,seats=pro,3:1795000000:{'07' * 16}",
        f"2:pageview:Firefox::/:=:1795000001:{'07' * 16}",
    ]
)
ROLLUP_CHECK = (
    "SELECT arrayStringConcat(groupArray(concat(value, '=', toString(p))), ' ') FROM "
    "(SELECT value, sumMerge(pageviews) AS p FROM rollup_daily WHERE dim = 'browser' GROUP BY value ORDER BY value)"
)
ROLLUP_WANT = "Chrome=1 Firefox=1"


def check_native_sample(session) -> None:
    """Load the writer's Native sample into `events`; fail unless it reads back."""
    where = NATIVE_SAMPLE.relative_to(REPO)
    try:
        session.query(f"INSERT INTO events SELECT * FROM file('{NATIVE_SAMPLE}', 'Native')")
        got = str(session.query(NATIVE_CHECK, "TSV")).strip()
        rollup = str(session.query(ROLLUP_CHECK, "TSV")).strip()
    except Exception as err:  # noqa: BLE001 - chdb raises ChdbError/RuntimeError
        raise Failure(f"{where}: cannot load on ClickHouse {engine_version(session)}\nerror: {first_line(err)}") from None
    if got != NATIVE_WANT or rollup != ROLLUP_WANT:
        raise Failure(
            f"{where}: read back wrong on ClickHouse {engine_version(session)}\n"
            f"  want {NATIVE_WANT!r} / {ROLLUP_WANT!r}\n  got  {got!r} / {rollup!r}"
        )


def engine_version(session) -> str:
    try:
        return str(session.query("SELECT version()", "TSV")).strip()
    except Exception:  # noqa: BLE001
        return "(modern)"


def first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else repr(err)


def indent(sql: str) -> str:
    return "\n".join("    " + line for line in sql.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sql-dir",
        type=Path,
        default=REPO / "sql",
        help="directory with NNNN_*.sql migrations and queries/ (default: sql/)",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=DEFAULT_VENV,
        help="where to install chdb-core if missing (default: var/venv-chdb)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print every statement"
    )
    args = parser.parse_args()

    sql_dir = args.sql_dir.resolve()
    migrations = sorted(p for p in sql_dir.glob("*.sql") if p.is_file())
    queries_dir = sql_dir / "queries"
    queries = (
        sorted(p for p in queries_dir.rglob("*.sql") if p.is_file())
        if queries_dir.is_dir()
        else []
    )
    if not migrations and not queries:
        print(f"check_sql_modern: no SQL files in {sql_dir}, nothing to check")
        return 0

    ensure_chdb(args.venv.resolve())
    from chdb import session as chdb_session

    workdir = tempfile.mkdtemp(prefix="headcount-chdb-")
    session = chdb_session.Session(workdir)
    count = 0
    try:
        session.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        session.query(f"USE {DATABASE}")  # sticks for the whole session
        for group in (migrations, queries):
            for path in group:
                statements = split_statements(path)
                for stmt in statements:
                    run(session, stmt, args.verbose)
                    count += 1
                if args.verbose:
                    print(
                        f"{path.relative_to(sql_dir)}: {len(statements)} statement(s)"
                    )
        if migrations and NATIVE_SAMPLE.is_file():
            check_native_sample(session)
            native = f", {NATIVE_SAMPLE.name} loaded"
        else:
            native = ""
        version = engine_version(session)
    except Failure as failure:
        print(f"check_sql_modern: FAILED\n{failure}", file=sys.stderr)
        return 1
    finally:
        session.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"check_sql_modern: {len(migrations)} migration file(s) and {len(queries)} query file(s), "
        f"{count} statement(s) OK on ClickHouse {version} (chdb){native}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
