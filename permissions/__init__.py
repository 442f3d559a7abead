"""Permissions: named permissions, role templates, admin-made roles, scoped grants."""
