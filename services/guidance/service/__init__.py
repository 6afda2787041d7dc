"""The guidance service's domain rules, one module per sub-domain."""
