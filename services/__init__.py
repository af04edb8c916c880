"""Domain rules without GraphQL: each module takes a session and plain values and raises DomainError."""
