"""Accounts, sessions and CSRF tokens.

Passwords are hashed with argon2id (argon2-cffi's defaults: RFC 9106 low-memory profile) and
rehashed on login when those parameters change. A session is a random 256-bit token in an
HttpOnly, SameSite=Strict cookie; the database holds only its sha256, with the session's CSRF
token (synchronizer-token pattern: every state-changing request must echo it, compared in
constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from crossguard.core.errors import InvalidInput
from crossguard.review.errors import Conflict
from crossguard.review.schema import sessions, users
from crossguard.review.store import ROLES, ReviewStore, User

_hasher = PasswordHasher()
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_username(username: str) -> None:
    if not (1 <= len(username) <= 64) or not set(username) <= USERNAME_CHARS:
        raise InvalidInput("usernames are 1-64 of a-z, 0-9, '-', '_', '.'")


class Accounts:
    def __init__(self, store: ReviewStore, hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self.engine = store.engine
        # Tests pass a cheaper (still argon2id) hasher; production uses the defaults.
        self.hasher = hasher or _hasher
        # Verified against when the user does not exist, so a login takes as long either way.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        # Keys the audit tag of unknown usernames; never stored, so a tag cannot be reversed.
        self._unknown_key = secrets.token_bytes(32)

    def _failed_actor(self, row: Any, typed: str) -> str:
        """The audit actor of a failed login: a known account's name; otherwise an HMAC tag of
        what was typed (a password typed into the username field must not reach the log),
        which still groups repeated attempts with one name within this process's life."""
        if row is not None:
            return str(row.username)
        tag = hmac.new(self._unknown_key, typed.encode(), hashlib.sha256).hexdigest()[:12]
        return f"unknown user {tag}"

    def create_user(self, username: str, password: str, role: str, *, actor: str = "system") -> int:
        _check_username(username)
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if not (MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS):
            raise InvalidInput(
                f"passwords are {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters"
            )
        now = self.store.clock()

        try:
            with self.engine.begin() as conn:
                user_id = conn.execute(
                    insert(users)
                    .values(
                        username=username,
                        password_hash=self.hasher.hash(password),
                        role=role,
                        reveal_media=False,
                        active=True,
                        created_at=now,
                    )
                    .returning(users.c.id)
                ).scalar_one()
                self.store._audit(conn, now, actor, "user_created", None, f"{username} {role}")
        except IntegrityError:
            raise Conflict(f"user {username} exists") from None
        return int(user_id)

    def has_users(self) -> bool:

        with self.engine.begin() as conn:
            return conn.execute(select(users.c.id).limit(1)).first() is not None

    def list_users(self) -> list[User]:

        with self.engine.begin() as conn:
            rows = conn.execute(select(users).order_by(users.c.username)).all()
        return [User(r.id, r.username, r.role, r.reveal_media) for r in rows]

    def authenticate(self, username: str, password: str) -> User | None:

        now = self.store.clock()
        password = password[:MAX_PASSWORD_CHARS]
        with self.engine.begin() as conn:
            row = conn.execute(
                select(users).where(users.c.username == username, users.c.active.is_(True))
            ).first()
            try:
                self.hasher.verify(row.password_hash if row else self._dummy_hash, password)
                ok = row is not None
            except (VerificationError, InvalidHashError):
                ok = False
            if not ok or row is None:
                self.store._audit(conn, now, self._failed_actor(row, username), "login_failed")
                return None
            if self.hasher.check_needs_rehash(row.password_hash):
                conn.execute(
                    update(users)
                    .where(users.c.id == row.id)
                    .values(password_hash=self.hasher.hash(password))
                )
            self.store._audit(conn, now, row.username, "login")
        return User(row.id, row.username, row.role, row.reveal_media)

    def open_session(self, user: User) -> tuple[str, str]:
        """A new session: (cookie token, CSRF token)."""

        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.store.clock()
        expires = now + timedelta(minutes=self.store.settings.session_minutes)
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            conn.execute(
                insert(sessions).values(
                    token_hash=_token_hash(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return token, csrf

    def session(self, token: str) -> Session | None:

        if not token or len(token) > 128:
            return None
        now = self.store.clock()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(users, sessions.c.csrf_token)
                .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
                .where(
                    sessions.c.token_hash == _token_hash(token),
                    sessions.c.expires_at >= now,
                    users.c.active.is_(True),
                )
            ).first()
        if row is None:
            return None
        return Session(User(row.id, row.username, row.role, row.reveal_media), row.csrf_token)

    def close_session(self, token: str, user: User) -> None:

        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == _token_hash(token)))
            self.store._audit(conn, self.store.clock(), user.username, "logout")

    def set_reveal_preference(self, user: User, reveal: bool) -> None:

        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user.id).values(reveal_media=reveal))
            self.store._audit(
                conn,
                self.store.clock(),
                user.username,
                "preference",
                None,
                f"reveal_media={reveal}",
            )


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


DEMO_USERS = (("demo-reviewer", "reviewer"), ("demo-lead", "lead"), ("demo-admin", "admin"))


def bootstrap_users(accounts: Accounts, password: str) -> list[str]:
    """First start with a bootstrap password: the demo accounts (one per role)."""
    if not password or accounts.has_users():
        return []
    for name, role in DEMO_USERS:
        accounts.create_user(name, password, role)
    return [name for name, _ in DEMO_USERS]
