"""SAL (Neural Networks 2025), as its authors' code computes it: docs/sal.md."""
