"""AGORA networks (torch), checkpoints (safetensors + JSON) and ONNX export/inference."""
