"""Optuna over any option, on any rung: ``python -m sweeps.sweep`` from the project root."""
