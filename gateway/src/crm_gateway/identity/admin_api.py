"""`/api/v1/roles` (admins), `/api/v1/users`, `/api/v1/teams` (reads: any signed-in caller, users in full for admins and
themselves, names only for others; writes: admins) and
`/api/v1/api-keys` (admins)."""

import uuid
from typing import Annotated, Literal

from crm_common.app import SessionDep
from crm_common.auth import Principal, current_principal, require
from crm_common.concurrency import IfMatch, etag
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, page_params
from fastapi import APIRouter, Depends, Query, Request, Response

from crm_gateway.identity import apikeys, roles, service, users
from crm_gateway.identity.passwords import password_problems
from crm_gateway.identity.schemas import (
    ApiKeyCreated,
    ApiKeyCreateRequest,
    ApiKeyRead,
    Role,
    RoleRead,
    RoleUpdateRequest,
    TeamCreateRequest,
    TeamPage,
    TeamRead,
    TeamUpdateRequest,
    UserCreateRequest,
    UserPage,
    UserRead,
    UserUpdateRequest,
)

Reader = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(require("admin"))]
Paging = Annotated[PageParams, Depends(page_params)]

user_router = APIRouter(prefix="/api/v1/users", tags=["users"])
team_router = APIRouter(prefix="/api/v1/teams", tags=["teams"])
key_router = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys"])
role_router = APIRouter(prefix="/api/v1/roles", tags=["roles"])


@user_router.get(
    "",
    operation_id="users_list",
    summary="List users (in full for admins, names only for others)",
    responses=problem_doc(401, 403, 422),
)
async def list_users(
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    q: Annotated[str | None, Query(description="Matches name (and email, for admins).")] = None,
    role: Annotated[Role | None, Query(description="Admins only.")] = None,
    active: bool | None = None,
) -> UserPage:
    items, total = await users.list_users(session, paging, q=q, role=role, active=active, viewer=caller)
    return UserPage(items=items, total=total, page=paging.page, page_size=paging.page_size)


@user_router.post(
    "",
    operation_id="users_create",
    summary="Create a user (admin)",
    status_code=201,
    responses=problem_doc(401, 403, 409, 422),
)
async def create_user(body: UserCreateRequest, request: Request, _: Admin, response: Response) -> UserRead:
    # Refused or hashed before the transaction opens, so no write lock is held across argon2.
    users.check_new_user(body)
    state = request.app.state
    password_hash = await service.hash_with(state.password_work, body.password) if body.password else None
    async with state.runtime.db.transaction() as session:
        user = await users.create_user(session, body, password_hash=password_hash)
        book = await roles.role_book(session)
    response.headers["ETag"] = etag(user.version)
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return users.user_read(user, [], book=book)


@user_router.get(
    "/{user_id}", operation_id="users_get", summary="Get a user", responses=problem_doc(401, 404)
)
async def get_user(user_id: uuid.UUID, session: SessionDep, caller: Reader, response: Response) -> UserRead:
    user = await users.get_user(session, user_id)
    response.headers["ETag"] = etag(user.version)
    full = caller.can("admin") or caller.id == user.id
    teams = (await users.team_ids_of(session, [user.id]))[user.id]
    return users.user_read(user, teams, full=full, book=await roles.role_book(session))


@user_router.patch(
    "/{user_id}",
    operation_id="users_update",
    summary="Update a user (admin)",
    description="Only the fields sent change. Needs the version read (`If-Match` or `version`): 412 when "
    "stale, 428 when neither is sent. Deactivating or demoting the last active admin is a 409 `LAST_ADMIN`.",
    responses=problem_doc(401, 403, 404, 409, 412, 422, 428),
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdateRequest,
    request: Request,
    _: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> UserRead:
    state = request.app.state
    password_hash = None
    # A new password the rule accepts is hashed before the transaction opens (a refused one is
    # answered in its usual order by update_user, without a hash).
    if body.password and not password_problems(body.password, email=body.email):
        password_hash = await service.hash_with(state.password_work, body.password)
    async with state.runtime.db.transaction() as session:
        user = await users.update_user(
            session, user_id=user_id, data=body, if_match=if_match, password_hash=password_hash
        )
        team_ids = (await users.team_ids_of(session, [user.id]))[user.id]
        book = await roles.role_book(session)
    response.headers["ETag"] = etag(user.version)
    return users.user_read(user, team_ids, book=book)


@team_router.get("", operation_id="teams_list", summary="List teams", responses=problem_doc(401, 422))
async def list_teams(
    session: SessionDep,
    _: Reader,
    paging: Paging,
    type: Literal["SALES", "MARKETING", "SUPPORT", "MANAGEMENT"] | None = None,
    active: bool | None = None,
    member_id: Annotated[uuid.UUID | None, Query(alias="memberId")] = None,
) -> TeamPage:
    items, total = await users.list_teams(session, paging, type=type, active=active, member_id=member_id)
    return TeamPage(items=items, total=total, page=paging.page, page_size=paging.page_size)


@team_router.post(
    "",
    operation_id="teams_create",
    summary="Create a team (admin)",
    status_code=201,
    responses=problem_doc(401, 403, 409, 422),
)
async def create_team(body: TeamCreateRequest, session: SessionDep, _: Admin, response: Response) -> TeamRead:
    team = await users.create_team(session, body)
    response.headers["ETag"] = etag(team.version)
    response.headers["Location"] = f"/api/v1/teams/{team.id}"
    return (await users.team_reads(session, [team]))[0]


@team_router.get(
    "/{team_id}", operation_id="teams_get", summary="Get a team", responses=problem_doc(401, 404)
)
async def get_team(team_id: uuid.UUID, session: SessionDep, _: Reader, response: Response) -> TeamRead:
    team = await users.get_team(session, team_id)
    response.headers["ETag"] = etag(team.version)
    return (await users.team_reads(session, [team]))[0]


@team_router.patch(
    "/{team_id}",
    operation_id="teams_update",
    summary="Update a team (admin)",
    description="Only the fields sent change; `memberIds` replaces the members; `managerId: null` clears "
    "the manager. Needs `If-Match` or `version` (412 stale, 428 missing).",
    responses=problem_doc(401, 403, 404, 409, 412, 422, 428),
)
async def update_team(
    team_id: uuid.UUID,
    body: TeamUpdateRequest,
    session: SessionDep,
    _: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> TeamRead:
    team = await users.update_team(session, team_id=team_id, data=body, if_match=if_match)
    response.headers["ETag"] = etag(team.version)
    return (await users.team_reads(session, [team]))[0]


@key_router.post(
    "",
    operation_id="api_keys_create",
    summary="Create an API key (admin); the key is in this response only",
    status_code=201,
    responses=problem_doc(401, 403, 422),
)
async def create_key(body: ApiKeyCreateRequest, session: SessionDep, admin: Admin) -> ApiKeyCreated:
    key, secret = await apikeys.create_key(session, body, creator=admin)
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=secret)


@key_router.get(
    "", operation_id="api_keys_list", summary="List API keys (admin)", responses=problem_doc(401, 403)
)
async def list_keys(session: SessionDep, _: Admin) -> list[ApiKeyRead]:
    return [ApiKeyRead.model_validate(k) for k in await apikeys.list_keys(session)]


@key_router.get(
    "/{key_id}",
    operation_id="api_keys_get",
    summary="Get an API key (admin)",
    responses=problem_doc(401, 403, 404),
)
async def get_key(key_id: uuid.UUID, session: SessionDep, _: Admin) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await apikeys.get_key(session, key_id))


@key_router.post(
    "/{key_id}/revoke",
    operation_id="api_keys_revoke",
    summary="Revoke an API key (admin); it stops working at once",
    responses=problem_doc(401, 403, 404),
)
async def revoke_key(key_id: uuid.UUID, session: SessionDep, _: Admin, request: Request) -> ApiKeyRead:
    key = await apikeys.revoke_key(session, key_id)
    front_door = getattr(request.app.state, "front_door", None)
    if front_door is not None:
        front_door.forget_key(key.id)
    return ApiKeyRead.model_validate(key)


@role_router.get(
    "",
    operation_id="roles_list",
    summary="List the roles: permissions and record scopes (admin)",
    responses=problem_doc(401, 403),
)
async def list_roles(session: SessionDep, _: Admin) -> list[RoleRead]:
    return [roles.role_read(r) for r in await roles.list_roles(session)]


@role_router.get(
    "/{name}",
    operation_id="roles_get",
    summary="Get a role: its permissions and record scopes (admin)",
    responses=problem_doc(401, 403, 404),
)
async def get_role(name: Role, session: SessionDep, _: Admin, response: Response) -> RoleRead:
    row = await roles.get_role(session, name)
    response.headers["ETag"] = etag(row.version)
    return roles.role_read(row)


@role_router.put(
    "/{name}",
    operation_id="roles_update",
    summary="Change a role's permissions and record scopes (admin)",
    description="Replaces the permissions and the scope of every data context (a write scope never wider "
    "than its read scope: 422 `INVALID_ROLE`; the admin role keeps `admin`). Needs the version read "
    "(`If-Match` or `version`): 412 stale, 428 missing. Every holder of the role is signed out (their "
    "tokens are refused within 5 s in every service) and their next token carries the new definition.",
    responses=problem_doc(401, 403, 404, 412, 422, 428),
)
async def update_role(
    name: Role,
    body: RoleUpdateRequest,
    session: SessionDep,
    _: Admin,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> RoleRead:
    row = await roles.update_role(session, name=name, data=body, if_match=if_match)
    guard = getattr(request.app.state, "session_guard", None)
    if guard is not None:  # the gateway's own check need not wait for its cache to expire
        guard.clear()
    front_door = getattr(request.app.state, "front_door", None)
    if front_door is not None:
        front_door.forget_keys()
    response.headers["ETag"] = etag(row.version)
    return roles.role_read(row)
