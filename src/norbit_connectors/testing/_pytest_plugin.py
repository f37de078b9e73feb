"""pytest plugin: the ``slack_emulator`` fixture."""
