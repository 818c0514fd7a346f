"""The ladder's tools: compare (parity and price of every rung) and trace_steps (where each rung takes each step).

Run them from the project root: ``python -m ladder.compare``, ``python -m ladder.trace_steps``.
"""
