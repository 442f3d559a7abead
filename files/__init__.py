"""Uploaded photos and documents: checked, cleaned, stored by content, served by signed links."""
