"""registry's domain rules, by sub-domain. Keyword-only functions; flush, never commit; events
through the outbox."""
