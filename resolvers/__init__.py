"""Thin resolvers per domain and their dataloaders: parse input, check rights, call services, map results."""
