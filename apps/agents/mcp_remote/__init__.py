"""The MCP client: external MCP servers a workspace registers, whose tools its agents may call
as `<server>.<tool>` through the one tool runner.

- transport.py: Streamable HTTP under the fetcher's SSRF rules, one deadline, a size cap;
- tools.py: listing, calling, and the registry spec of a remote tool (flags, schema, layer 2);
- services.py: register, refresh, remove (owners and admins), and the page's reads.
"""
