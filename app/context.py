"""The request context lives with the resolvers that read it (:mod:`resolvers.context`); the app builds it.

Re-exported here for the app's modules (``app`` may import every layer; nothing below imports ``app``).
"""

from resolvers.context import AppParts, Context, DbScope, Viewer

__all__ = ["AppParts", "Context", "DbScope", "Viewer"]
