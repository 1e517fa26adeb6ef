"""Differentiable ops: each is a Function (forward + backward on raw arrays) and a public function.

`gnn.functional` re-exports the public functions; this package is where they are written.
"""
