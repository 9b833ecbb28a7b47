"""Workspaces, their WhatsApp numbers (webhook secrets) and API tokens (stored as SHA-256)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NumberEntry:
    phone_number_id: str
    workspace_id: str
    webhook_secret: str
    verify_token: str | None
    region: str
    #: during a rotation, the old secret and until when it still verifies
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None

    def secrets(self, now: datetime | None = None) -> tuple[str, ...]:
        """The secrets a signature may be made with now: the current one, and the previous
        one while its overlap lasts."""
        now = now or datetime.now(UTC)
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            return (self.webhook_secret, self.previous_secret)
        return (self.webhook_secret,)


@dataclass(frozen=True)
class TokenEntry:
    workspace_id: str
    role: str
    #: the person a personal `human` token belongs to
    user: str | None = None


#: the shortest webhook secret and API token `workspace add` and `rotate-secret` take: a
#: short secret can be guessed, and an empty one lets anyone sign (issue #24)
MIN_SECRET = 16


def weak_secret(value: str | None, what: str) -> str | None:
    """Why `value` is too weak to be a secret or token (None: fine, or not given)."""
    if value is None:
        return None
    if len(value.strip()) < MIN_SECRET:
        return f"{what} must be at least {MIN_SECRET} characters"
    return None


def mask(secret: str | None) -> str | None:
    """A secret as `workspace list` shows it: its last four characters, enough to tell
    which key is set, never enough to use it."""
    if not secret:
        return None
    return "…" + secret[-4:] if len(secret) >= 12 else "…"


class Taken(ValueError):
    """A number or token belongs to another workspace; moving it must be asked for."""


async def add_workspace(
    conn: asyncpg.Connection, *, workspace_id: str, phone_number_id: str | None,
    webhook_secret: str | None, api_token: str | None, role: str = "human",
    region: str = "ID", verify_token: str | None = None, user: str | None = None,
    inbox_url: str | None = None, move: bool = False, kapso_api_key: str | None = None,
    auto_assign: str | None = None,
) -> None:
    """Register a workspace, a number and/or a token. A number or token that belongs to
    another workspace is moved only with `move=True` (else `Taken`): a typo must not hand a
    tenant's webhooks or API access to another tenant. `kapso_api_key` is the workspace's key
    for Kapso's API (the reconciler reads its numbers' messages with it). `auto_assign`
    (off, all, hot) sets the workspace's rule for new leads; turned on, it holds from now
    (earlier leads are left alone; from the start of this second, as WhatsApp's timestamps
    are in whole seconds)."""
    async with conn.transaction():
        if not move:
            owner = phone_number_id and await conn.fetchval(
                "SELECT workspace_id FROM workspace_numbers WHERE phone_number_id = $1",
                phone_number_id)
            if owner and owner != workspace_id:
                raise Taken(f"phone number {phone_number_id} belongs to workspace {owner};"
                            " pass --move to move it")
            holder = api_token and await conn.fetchval(
                "SELECT workspace_id FROM api_tokens WHERE token_sha256 = $1",
                token_hash(api_token))
            if holder and holder != workspace_id:
                raise Taken(f"this API token belongs to workspace {holder};"
                            " pass --move to move it")
        await conn.execute(
            "INSERT INTO workspaces (workspace_id, region, inbox_url, kapso_api_key)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (workspace_id) DO UPDATE SET region = EXCLUDED.region,"
            " inbox_url = coalesce(EXCLUDED.inbox_url, workspaces.inbox_url),"
            " kapso_api_key = coalesce(EXCLUDED.kapso_api_key, workspaces.kapso_api_key)",
            workspace_id, region, inbox_url, kapso_api_key,
        )
        if auto_assign is not None:
            await conn.execute(
                "UPDATE workspaces SET auto_assign = $2, auto_assign_since = CASE"
                " WHEN $2 = 'off' THEN NULL WHEN auto_assign = 'off' THEN date_trunc('second', now())"
                " ELSE auto_assign_since END WHERE workspace_id = $1", workspace_id, auto_assign)
        if phone_number_id:
            if not webhook_secret:
                raise ValueError("a phone number needs its webhook secret")
            await conn.execute(
                "INSERT INTO workspace_numbers (phone_number_id, workspace_id, webhook_secret,"
                " verify_token) VALUES ($1, $2, $3, $4) ON CONFLICT (phone_number_id) DO UPDATE"
                " SET workspace_id = EXCLUDED.workspace_id,"
                " webhook_secret = EXCLUDED.webhook_secret, verify_token = EXCLUDED.verify_token",
                phone_number_id, workspace_id, webhook_secret, verify_token,
            )
        if api_token:
            await conn.execute(
                "INSERT INTO api_tokens (token_sha256, workspace_id, role, user_name)"
                " VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (token_sha256) DO UPDATE SET workspace_id = EXCLUDED.workspace_id,"
                " role = EXCLUDED.role, user_name = EXCLUDED.user_name",
                token_hash(api_token), workspace_id, role, user,
            )


async def load_numbers(conn: asyncpg.Connection) -> dict[str, NumberEntry]:
    rows = await conn.fetch(
        "SELECT n.phone_number_id, n.workspace_id, n.webhook_secret, n.verify_token, w.region,"
        " n.previous_secret, n.previous_secret_until"
        " FROM workspace_numbers n JOIN workspaces w USING (workspace_id)"
    )
    return {r["phone_number_id"]: NumberEntry(**dict(r)) for r in rows}


async def load_tokens(conn: asyncpg.Connection) -> dict[str, TokenEntry]:
    rows = await conn.fetch("SELECT token_sha256, workspace_id, role, user_name FROM api_tokens")
    return {r["token_sha256"]: TokenEntry(r["workspace_id"], r["role"], r["user_name"])
            for r in rows}


async def load_inbox_urls(conn: asyncpg.Connection) -> dict[str, str]:
    """Each workspace's "Open in Inbox" URL pattern (`workspace add --inbox-url`)."""
    rows = await conn.fetch("SELECT workspace_id, inbox_url FROM workspaces"
                            " WHERE inbox_url IS NOT NULL")
    return {r["workspace_id"]: r["inbox_url"] for r in rows}


async def rotate_secret(conn: asyncpg.Connection, phone_number_id: str, new_secret: str,
                        overlap: timedelta) -> bool:
    """Make `new_secret` the number's secret; the old one keeps verifying for `overlap`
    (set the new secret in Kapso/Meta within it). False if the number is unknown."""
    result = await conn.execute(
        "UPDATE workspace_numbers SET previous_secret = webhook_secret,"
        " previous_secret_until = now() + $3::interval, webhook_secret = $2"
        " WHERE phone_number_id = $1", phone_number_id, new_secret, overlap)
    return bool(result.endswith(" 1"))


async def clear_expired_secrets(conn: asyncpg.Connection) -> int:
    """Forget previous webhook secrets whose overlap has ended (they no longer verify, and
    a secret kept is a secret that can leak); returns how many."""
    result = await conn.execute(
        "UPDATE workspace_numbers SET previous_secret = NULL, previous_secret_until = NULL"
        " WHERE previous_secret IS NOT NULL AND previous_secret_until <= now()")
    return int(result.split()[-1])


async def list_workspaces(conn: asyncpg.Connection) -> list[dict[str, object]]:
    """Every workspace with its numbers and tokens; never a secret or a token itself (a
    token shows as the first 12 hex digits of its hash, enough to revoke it by)."""
    out: list[dict[str, object]] = []
    for w in await conn.fetch("SELECT workspace_id, region, kapso_api_key, auto_assign"
                              " FROM workspaces ORDER BY 1"):
        numbers = await conn.fetch(
            "SELECT phone_number_id, previous_secret_until FROM workspace_numbers"
            " WHERE workspace_id = $1 ORDER BY 1", w["workspace_id"])
        tokens = await conn.fetch(
            "SELECT token_sha256, role, user_name FROM api_tokens WHERE workspace_id = $1"
            " ORDER BY role, user_name NULLS FIRST, token_sha256", w["workspace_id"])
        out.append({
            "workspace_id": w["workspace_id"], "region": w["region"],
            "kapso_api_key": mask(w["kapso_api_key"]), "auto_assign": w["auto_assign"],
            "numbers": [{"phone_number_id": n["phone_number_id"],
                         "old_secret_until": n["previous_secret_until"]} for n in numbers],
            "tokens": [{"hash": t["token_sha256"][:12], "role": t["role"],
                        "user": t["user_name"]} for t in tokens],
        })
    return out


async def revoke(conn: asyncpg.Connection, *, token: str | None = None,
                 token_hash_prefix: str | None = None, phone_number_id: str | None = None
                 ) -> int:
    """Remove a token (by value, or by the hash prefix `workspace list` shows) or a number;
    returns how many were removed. A hash prefix must name exactly one token."""
    if token is not None:
        result = await conn.execute("DELETE FROM api_tokens WHERE token_sha256 = $1",
                                    token_hash(token))
    elif token_hash_prefix is not None:
        prefix = token_hash_prefix.lower()
        if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
            raise ValueError("a token hash prefix is at least 8 hex digits")
        matches = await conn.fetchval(
            "SELECT count(*) FROM api_tokens WHERE token_sha256 LIKE $1 || '%'", prefix)
        if matches > 1:
            raise ValueError(f"{matches} tokens start with {prefix}: give more digits")
        result = await conn.execute("DELETE FROM api_tokens WHERE token_sha256 LIKE $1 || '%'",
                                    prefix)
    elif phone_number_id is not None:
        result = await conn.execute("DELETE FROM workspace_numbers WHERE phone_number_id = $1",
                                    phone_number_id)
    else:
        raise ValueError("name a token, a token hash or a phone number id")
    return int(result.rsplit(" ", 1)[1])


@dataclass(frozen=True)
class ReconcileTarget:
    """A number the reconciler reads from Kapso's API, with its workspace's key and how far
    the log is known complete (None: never reconciled)."""

    phone_number_id: str
    workspace_id: str
    region: str
    api_key: str = field(repr=False)
    complete_until: datetime | None = None

    def __str__(self) -> str:  # never the key, whatever prints it
        return f"{self.workspace_id}/{self.phone_number_id}"


async def load_reconcile_targets(conn: asyncpg.Connection, phone_number_id: str | None = None
                                 ) -> list[ReconcileTarget]:
    """Every number whose workspace has a Kapso API key (or the one asked for)."""
    rows = await conn.fetch(
        "SELECT n.phone_number_id, n.workspace_id, w.region, w.kapso_api_key AS api_key,"
        " r.complete_until FROM workspace_numbers n JOIN workspaces w USING (workspace_id)"
        " LEFT JOIN reconcile_watermarks r USING (phone_number_id)"
        " WHERE w.kapso_api_key IS NOT NULL AND ($1::text IS NULL OR n.phone_number_id = $1)"
        " ORDER BY n.workspace_id, n.phone_number_id", phone_number_id)
    return [ReconcileTarget(**dict(r)) for r in rows]
