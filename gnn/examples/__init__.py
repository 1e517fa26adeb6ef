"""Training recipes that `gnn train NAME` runs: each module has main(args) -> dict of metrics."""
