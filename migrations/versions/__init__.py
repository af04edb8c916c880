"""Alembic revisions (alembic skips this file); a package so that installs include the revisions."""
