"""Krylov solvers with subspace recycling (in development; see the README's status table)."""
