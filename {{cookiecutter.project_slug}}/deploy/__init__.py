"""A trained model, deployed: ``python -m deploy.export`` (ONNX, .pt2) and ``python -m deploy.serve`` (LitServe)."""
