"""The domain services: what the MCP server calls, without SQL or Redis (see the layout in docs/design.md)."""
