"""The GraphQL schema: Strawberry types and root fields. No I/O happens here."""
