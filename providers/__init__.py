"""Clients of the upstream AI providers: HTTP, SSE decoding, catalog parsing and pricing."""
