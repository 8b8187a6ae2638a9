"""Credentials for ``harness server --auth``: MLflow's basic-auth app, one account for the study.

Why this shape: MLflow's client already sends HTTP basic credentials from two environment
variables, ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD``. The server takes its
account from the same two variables, so one pair set on every node (and where ``harness
report``/``harness ui`` run) is the whole setup; a study forwards them to its trials'
processes (``runtime_env``), as it does ``HARNESS_TRACKING_TIMEOUT``.

The account is the auth app's admin: it can read and write every run, as a study, its
report and the UI need. Other users can be added with MLflow's own API; an account created
without permissions gets none (``default_permission = NO_PERMISSIONS``). A request without
credentials, or with wrong ones, gets HTTP 401 (``/health`` stays open, for readiness
checks).

What lives where: ``STORE/auth.ini`` (the app's settings, no secret in it) and
``STORE/auth.db`` (users and password hashes, created on the first start). The password is
handed to the server process in its environment, never written. The auth database keeps the
first start's password: a later start with another password for the same user is refused
before the server starts, rather than serving a password the clients do not know.

Basic auth sends the password on every request, readable by anyone on the path unless the
server sits behind TLS (a reverse proxy): keep it on the cluster's private network.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from harness.errors import TrackingError

USER_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
CREDENTIAL_ENVS = (USER_ENV, PASSWORD_ENV)
MIN_PASSWORD = 12  # MLflow's own password policy (mlflow.utils.validation._validate_password)
AUTH_APP = "basic-auth"
AUTH_INI = "auth.ini"
AUTH_DB = "auth.db"
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"


def credentials_from_env(environ=None) -> tuple[str, str]:
    """The ``(user, password)`` from :data:`USER_ENV`/:data:`PASSWORD_ENV`; TrackingError
    naming what is missing or too short."""
    environ = os.environ if environ is None else environ
    missing = [name for name in CREDENTIAL_ENVS if not environ.get(name)]
    if missing:
        raise TrackingError(
            f"--auth needs {' and '.join(missing)} set: the account the server creates and "
            f"every client sends (set both {USER_ENV} and {PASSWORD_ENV} on every node, and "
            "where `harness report` and `harness ui` run)")
    user, password = environ[USER_ENV], environ[PASSWORD_ENV]
    if len(password) < MIN_PASSWORD:
        raise TrackingError(f"{PASSWORD_ENV} must be at least {MIN_PASSWORD} characters "
                            f"(MLflow's password policy), got {len(password)}")
    return user, password


#: how long a server worker trusts credentials it verified (MLflow's ``auth_cache_ttl_seconds``)
AUTH_CACHE_SECONDS = 3600


def auth_ini_text(store: Path) -> str:
    """The auth app's settings for ``store``: the user database beside the runs, no secret."""
    return ("[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{store / AUTH_DB}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "grant_default_workspace_access = false\n"
            # every request is checked against the password's scrypt hash, over 0.1 s of
            # CPU each, unless the worker keeps the accounts it verified: the one account's
            # password cannot change while the server runs (a new one is refused at start)
            f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n")


def check_existing_account(store: Path, user: str, password: str) -> None:
    """TrackingError when ``store``'s auth database already holds ``user`` with another
    password; nothing to check before the first start."""
    db = store / AUTH_DB
    if not db.is_file():
        return
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    users = SqlAlchemyStore()
    users.init_db(f"sqlite:///{db}")
    try:
        if users.has_user(user) and not users.authenticate_user(user, password):
            raise TrackingError(
                f"{db} already holds user {user!r} with another password (the one of the "
                f"server's first start): set {PASSWORD_ENV} to it, or delete {db} to start "
                "the accounts over (the runs are not in it)")
    finally:
        users.engine.dispose()


def prepare(store: Path, user: str, password: str) -> dict[str, str]:
    """Check ``user``/``password`` (:func:`credentials_from_env`) against the store's
    accounts, write ``STORE/auth.ini`` and return the environment variables the
    ``mlflow server --app-name basic-auth`` process needs. Nothing is written when the check
    fails."""
    check_existing_account(store, user, password)
    ini = store / AUTH_INI
    ini.write_text(auth_ini_text(store))
    # the app's CSRF protection (its web forms) needs a key its workers share; one per start
    # only logs out the UI's form sessions, never a client
    key = os.environ.get(SECRET_KEY_ENV) or secrets.token_hex(32)
    return {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_USERNAME": user,
            "MLFLOW_AUTH_ADMIN_PASSWORD": password, SECRET_KEY_ENV: key}


def forwarded(environ=None) -> dict[str, str]:
    """The credential variables set here, for the trials' processes on every node."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in CREDENTIAL_ENVS if environ.get(name)}
