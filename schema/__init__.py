"""Strawberry types, inputs, enums, scalars and errors, one module per domain; schema.py assembles them."""
