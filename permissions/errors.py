"""Errors of the permissions package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class PermissionsError(DoorstepError):
    """Root of the permissions package's errors."""


class InvalidPermissionInput(InvalidInput, PermissionsError):
    """A field of a role, grant or merchant request breaks a rule."""


class RoleNotFound(NotFound, PermissionsError):
    """No such role."""

    code = "role_not_found"


class GrantNotFound(NotFound, PermissionsError):
    """No such grant (or already revoked)."""

    code = "grant_not_found"


class RoleTaken(Conflict, PermissionsError):
    """A role of that name exists."""

    code = "role_taken"


class RoleInUse(Conflict, PermissionsError):
    """A role that is still granted cannot be deleted."""

    code = "role_in_use"


class DuplicateGrant(Conflict, PermissionsError):
    """The user already holds this role in this scope."""

    code = "duplicate_grant"
