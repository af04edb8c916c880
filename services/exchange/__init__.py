"""The billing exchange (issue 18): files from billing into the cabinet, and the cabinet's actions back.

- :mod:`services.exchange.formats` — the versioned CSV formats of the inbound entities (``docs/exchange.md``);
- :mod:`services.exchange.importer` — a batch applied all or nothing: COPY to staging, set-based merges;
- :mod:`services.exchange.feed` — the outbound change feed with its commit-ordered cursor;
- :mod:`services.exchange.writer` — writes the cabinet's billing-owned data as an exchange set (samples,
  the demo).
"""
