"""The domain services: what the MCP server calls, without SQL or Redis."""
