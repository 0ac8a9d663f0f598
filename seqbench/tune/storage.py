"""Where studies live, what they are called, and the lock that makes "start another trial?" one
atomic step across processes and machines.

- Default: Optuna's journal storage on ``<results>/<suite>/tune/journal.log`` (several processes
  on one machine, or on machines that share the results folder; Optuna advises against SQLite
  for parallel workers). The study lock is an OS file lock beside the trial store.
- ``--storage postgresql://user:password@host/db``: Optuna's RDB storage on PostgreSQL, for
  workers on several machines. The study lock is a PostgreSQL advisory lock, and Optuna's
  heartbeat (which covers only its database storages) tells which running trials on another
  machine are dead.

A study's name is ``<suite>/<variant label>/<dataset>`` (:func:`study_name`): every process that
tunes the same suite entry on the same dataset joins the same study.

A storage URL's password never leaves this module: :attr:`Storage.shown` (what records, logs,
summaries and reports say) has it replaced by ``***`` (:func:`mask`), and so has every error
message that passes through :func:`scrub`.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seqbench.errors import ConfigError

#: The journal file, under ``<results>/<suite>/tune/`` (optuna-dashboard opens it).
JOURNAL = "journal.log"
#: Optuna heartbeat of PostgreSQL trials (seconds), and how long a silent one lives.
HEARTBEAT_SECONDS = 20
GRACE_SECONDS = 120


def study_name(suite: str, label: str, dataset: str) -> str:
    """The one naming rule: suite, models entry (its variant label), dataset."""
    return f"{suite}/{label}/{dataset}"


def mask(url: str) -> str:
    """``url`` with any password (in the authority or as a ``password`` query parameter)
    replaced by ``***``; a plain path is returned as it is."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() == "password" for k, _ in query):
        shown = [(k, "***" if k.lower() == "password" else v) for k, v in query]
        query_text = urllib.parse.urlencode(shown, safe="*")
    else:
        query_text = parts.query
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query_text, parts.fragment))


def secrets_of(url: str) -> list[str]:
    """The password strings of ``url`` (raw and percent-decoded), to scrub from messages."""
    if "://" not in url:
        return []
    parts = urllib.parse.urlsplit(url)
    found = []
    if parts.password:
        found.append(parts.password)
    found += [v for k, v in urllib.parse.parse_qsl(parts.query) if k.lower() == "password" and v]
    for raw in list(found):
        found.append(urllib.parse.unquote(raw))
        found.append(urllib.parse.quote(raw, safe=""))
    return [s for s in dict.fromkeys(found) if s]


@dataclass
class Storage:
    """An opened study storage (``optuna`` is Optuna's storage object)."""

    kind: Literal["journal", "postgresql"]
    url: str = field(repr=False)  # as given: may hold a password; never written anywhere
    shown: str  # what records and messages say
    optuna: Any = field(repr=False)
    lock_dir: Path | None = None  # journal: where the study locks are
    journal: Path | None = None
    _thread_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _engine: Any = field(default=None, repr=False)

    @property
    def dashboard_target(self) -> str:
        """What to pass to optuna-dashboard (masked: put the password back, or use
        ``PGPASSWORD`` / ``~/.pgpass``)."""
        return str(self.journal) if self.journal is not None else self.shown

    @contextlib.contextmanager
    def lock(self, study: str) -> Iterator[None]:
        """The study's critical section, across threads, processes and (PostgreSQL) hosts."""
        with self._thread_lock:
            if self.kind == "journal":
                from filelock import FileLock

                assert self.lock_dir is not None
                self.lock_dir.mkdir(parents=True, exist_ok=True)
                with FileLock(str(self.lock_dir / f"study-{_digest(study)[:16]}.lock")):
                    yield
            else:
                with self._advisory_lock(study):
                    yield

    def _advisory_lock(self, study: str) -> contextlib.AbstractContextManager[None]:
        return advisory_lock(self._engine, study)

    @property
    def heartbeats(self) -> bool:
        """Whether Optuna's own heartbeat tells dead trials (its RDB storage)."""
        return self.kind == "postgresql"

    def record_heartbeat(self, trial_id: int) -> None:
        if self.heartbeats:
            self.optuna.record_heartbeat(trial_id)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        with contextlib.suppress(Exception):
            self.optuna.remove_session()


@contextlib.contextmanager
def advisory_lock(engine: Any, name: str) -> Iterator[None]:
    """A PostgreSQL session-level advisory lock on ``name``, held on its own connection."""
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(f"seqbench:{name}".encode()).digest()[:8], "big")
    key -= 1 << 63  # a signed bigint
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


def _driver() -> str:
    """The installed PostgreSQL driver SQLAlchemy should use: psycopg (3, the tune extra's),
    else psycopg2."""
    import importlib.util

    for module, name in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return name
    return "psycopg"  # not installed: the import error names it


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def scrub(text: str, url: str | None) -> str:
    """``text`` with every secret of ``url`` replaced by ``***``."""
    for secret in secrets_of(url or ""):
        text = text.replace(secret, "***")
    return text


def open_storage(
    spec: str | None,
    tune_dir: Path,
    lock_dir: Path,
    on_stale: Callable[[Any, Any], None] | None = None,
) -> Storage:
    """The storage ``--storage`` names (default: the journal under ``tune_dir``).

    ``on_stale(study, trial)`` is called for each PostgreSQL trial Optuna's heartbeat finds dead.
    """
    if spec is None or "://" not in spec:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(spec).expanduser() if spec else tune_dir / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        return Storage(
            kind="journal",
            url=str(path),
            shown=str(path),
            optuna=JournalStorage(JournalFileBackend(str(path))),
            lock_dir=lock_dir,
            journal=path,
        )
    scheme = urllib.parse.urlsplit(spec).scheme.lower()
    if scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ConfigError(
            f"--storage {mask(spec)}: expected postgresql://USER:PASSWORD@HOST[:PORT]/DB (workers "
            "on several machines) or a journal file path (default: RESULTS/<suite>/tune/"
            f"{JOURNAL})"
        )
    # SQLAlchemy spells the scheme postgresql (libpq also accepts postgres); without a driver
    # named, the one installed (SQLAlchemy's own default may not be)
    driver = scheme.split("+", 1)[1] if "+" in scheme else _driver()
    url = f"postgresql+{driver}" + spec[len(scheme) :]
    try:
        import sqlalchemy
        from optuna.storages import RDBStorage
        from sqlalchemy.pool import NullPool

        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        # one process at a time creates Optuna's tables (two at once collide)
        with advisory_lock(engine, "optuna-schema"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat arguments are "experimental"
            optuna_storage = RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=on_stale,
            )
    except ImportError as exc:
        raise ConfigError(
            f"--storage {mask(spec)} needs a PostgreSQL driver ({exc.name or exc}): "
            'pip install "seqbench[tune]"'
        ) from None
    except Exception as exc:  # connection refused, bad password, no database …
        raise ConfigError(
            f"--storage {mask(spec)}: cannot open it ({type(exc).__name__}: "
            f"{scrub(str(exc).splitlines()[0] if str(exc) else '', spec)})"
        ) from None
    return Storage(
        kind="postgresql",
        url=url,
        shown=mask(spec),
        optuna=optuna_storage,
        _engine=engine,
    )
