"""What each GraphQL field does, and the per-request Context of services they use."""
