"""PDE problems, dataset generators and Gaussian-process PDE solvers (in development;
see the README's status table)."""
