from starlette.routing import Route


def openai_routes() -> list[Route]:
    return []
