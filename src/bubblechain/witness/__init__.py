"""Witnesses: independent nodes that re-validate every block before cosigning it."""

from .base import Witness, WitnessHead
from .local import LocalWitness

__all__ = ["LocalWitness", "Witness", "WitnessHead"]
