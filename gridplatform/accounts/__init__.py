"""Accounts and roles: households, the grid operator, regulators, admins, and their identities."""
