"""Signatures, canonical encodings and the C2SP signed-note formats."""
