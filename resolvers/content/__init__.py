"""Resolvers of the information sections (I1–I5), one module per section: loaders, reads and writes."""
