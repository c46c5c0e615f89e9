"""The torch engine's building blocks, shared by calibrate (which times them) and validate (which
runs the torch-cudagraph engine of them): linear layers per precision (linear.py), decoder-layer
attention and MLP/MoE blocks (blocks.py) and activation quantization kernels (quant.py).
Imports neither calibrate nor validate. This package imports nothing; blocks.py and linear.py
import torch, so import them only where torch is needed (inside functions elsewhere).
"""
