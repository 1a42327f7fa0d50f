"""Secrets the service generates for itself and shares between replicas through the database."""

from __future__ import annotations

import secrets

import asyncpg
from pydantic import SecretStr

_SIGNING_KEY = "ack_link_signing_key"


async def signing_key(pool: asyncpg.Pool, configured: SecretStr | None) -> bytes:
    """The configured SIGNING_KEY, else one generated once and stored, so links survive restarts."""
    if configured is not None:
        return configured.get_secret_value().encode()
    async with pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO service_secrets (name, value) VALUES ($1, $2)"
            " ON CONFLICT (name) DO NOTHING",
            _SIGNING_KEY,
            secrets.token_urlsafe(48),
        )
        value: str = await connection.fetchval(
            "SELECT value FROM service_secrets WHERE name = $1", _SIGNING_KEY
        )
    return value.encode()
