"""PDE problems and dataset generators (more in development; see the README's
status table)."""

from ._random_field import gaussian_random_field as gaussian_random_field
