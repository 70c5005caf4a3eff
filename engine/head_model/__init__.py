"""FLAME-layout linear head models: the open model, a FLAME loader, and LBS in numpy and torch."""
