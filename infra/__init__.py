"""Infrastructure: the event store, mapper, HTTP app, configuration, bootstrap and CLI."""
