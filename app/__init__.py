"""Kabinet application wiring: settings, database, request context, ASGI app, CLI, broadcast."""
