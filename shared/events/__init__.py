"""The event backbone: CloudEvents envelope, JetStream streams, transactional outbox, idempotent
consumers."""
