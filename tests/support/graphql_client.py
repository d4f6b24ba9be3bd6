"""The tests' GraphQL client: one for the ASGI app in the test's process and for real servers
(``promenade up``, ``api``, replicas, plain uvicorn)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import User
from app.services.tokens import create_api_token


class GraphQLClient:
    """GraphQL over HTTP. A request goes with the headers the HTTP client was made with (a
    server's bootstrapped token, say), or as ``as_user``: with a bearer token made for that
    user once, through ``session``."""

    def __init__(self, http: httpx.AsyncClient, session: AsyncSession | None = None) -> None:
        self.http = http
        self._session = session
        self._tokens: dict[str, str] = {}

    async def token_for(self, user: User) -> str:
        if user.id not in self._tokens:
            assert self._session is not None, "a client without a session makes no tokens"
            _, secret = await create_api_token(self._session, actor=user, name="test")
            await self._session.commit()
            self._tokens[user.id] = secret
        return self._tokens[user.id]

    async def raw(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        as_user: User | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """The response's body, and its HTTP status as ``status_code``."""
        if as_user is not None:
            token = await self.token_for(as_user)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": None if variables is None else dict(variables)},
            headers=headers,
        )
        body: dict[str, Any] = response.json()
        body["status_code"] = response.status_code
        return body

    async def execute(
        self, query: str, variables: Mapping[str, Any] | None = None, *, as_user: User | None = None
    ) -> dict[str, Any]:
        """The response's data; fails the test on GraphQL errors."""
        body = await self.raw(query, variables, as_user=as_user)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def ok(
        self, query: str, variables: Mapping[str, Any] | None = None, *, as_user: User | None = None
    ) -> dict[str, Any]:
        """The result of a one-field mutation; fails the test when it is an error type."""
        data = await self.execute(query, variables, as_user=as_user)
        (result,) = data.values()
        assert isinstance(result, dict), data
        assert "code" not in result, result
        return result


@contextlib.asynccontextmanager
async def graphql_over_http(
    url: str, token: str, *, timeout_s: float = 60
) -> AsyncIterator[GraphQLClient]:
    """A client of the server at ``url`` with one user's bearer token, without the machine's
    proxy settings."""
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout_s,
        trust_env=False,
    ) as http:
        yield GraphQLClient(http)
