"""Errors of the catalog package."""

from __future__ import annotations

from doorstep.errors import Conflict, DoorstepError, InvalidInput, NotFound


class CatalogError(DoorstepError):
    """Root of the catalog package's errors."""


class InvalidCatalogInput(InvalidInput, CatalogError):
    """A catalog field breaks a rule."""


class CatalogNotFound(NotFound, CatalogError):
    """No such city, category, skill or service."""


class AlreadyExists(Conflict, CatalogError):
    """An entry with this code exists already."""

    code = "already_exists"


class OutsideServiceArea(InvalidInput, CatalogError):
    """A point outside every active city's service area."""

    code = "outside_service_area"
