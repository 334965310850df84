"""bubblechain: tamper-evident machine learning."""

__version__ = "0.1.0"
