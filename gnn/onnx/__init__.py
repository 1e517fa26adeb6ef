"""Export gnn models to ONNX (run them in onnxruntime): `gnn.onnx.export(model, args, f)`.

One forward pass is traced through the autograd hook (gnn.autograd.on_apply), each op is turned
into ONNX nodes by a converter (gnn/onnx/convert.py), and the graph is built with onnx.helper.
The onnx package is imported only when export() runs: `pip install 'gnn[onnx]'`.
"""

from __future__ import annotations

from gnn.onnx.export import ExportError, export

__all__ = ["ExportError", "export"]
