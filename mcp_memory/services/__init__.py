"""The domain services (no SQL, no Redis): see docs on the target layout (issue 11)."""
