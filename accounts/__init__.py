"""Accounts: users and their roles, login with phone and password, tokens, addresses."""
