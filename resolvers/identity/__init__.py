"""Credential verification primitives: bearer parsing, JWTs, NextAuth session tokens, API keys.

Everything here is pure (no database, no web framework): each function takes a string and
configuration and returns a user id or raises a `CredentialError`. Looking users up and
checking revocation happen in the layers that call these.
"""
