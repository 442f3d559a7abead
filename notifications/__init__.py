"""Notifications: an inbox and SMS driven by domain events, reminders, login codes."""
