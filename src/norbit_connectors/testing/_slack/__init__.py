"""Internals of the local Slack Web API emulator (see :class:`norbit_connectors.testing.SlackEmulator`)."""
