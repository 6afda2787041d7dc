"""gateway: the single entry. Authenticates clients, checks scopes, forwards to the services with a
signed identity, and records; it holds no domain rules."""
