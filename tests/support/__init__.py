"""Test helpers: a fake upstream server, an in-process app server, a GraphQL client."""
