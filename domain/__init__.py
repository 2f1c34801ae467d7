"""The domain model: aggregates, their events and lifecycle rules. No I/O."""
