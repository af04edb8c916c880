"""Alembic migrations of the Kabinet database; run them through ``migrations.runner``."""
