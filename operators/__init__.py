"""Neural operators (in development; see the README's status table)."""
