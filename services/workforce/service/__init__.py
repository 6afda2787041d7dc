"""workforce's domain rules, by sub-domain. Keyword-only; flush, never commit; events through the
outbox."""
