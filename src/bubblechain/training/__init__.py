"""Bubbles, engines and the tracked MapReduce training runtime."""
