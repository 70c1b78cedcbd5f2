"""Every API type, input and enum of the GraphQL schema, defined once.

This package is the schema's leaf: it imports nothing else of the project, so resolvers
build and return these types directly and the root fields in `schema/` attach them.
"""
