"""Identity: registration, logins, sessions, the profile, QR and device-key logins, VK (A1–A8, J1–J10).

One module per feature; every function takes the request's :class:`~services.identity.common.Caller`
(clock, client address, secrets, counters) and a session; it raises :class:`~services.errors.DomainError`s
and never commits, except that the resolvers commit after a failed code check so wrong tries count. Every
change of personal data writes an audit row.
"""
