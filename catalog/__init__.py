"""Catalog: cities and their service areas, skills, certificate kinds, categories, services."""
