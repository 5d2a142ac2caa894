"""Left from before the split (issue 12): Stage 2 now lives in selfinstruct.py, diversity.py and coverage.py.

factory.py still imports generate_run from here; delete this module once it imports it from selfinstruct.
"""

from .selfinstruct import generate_run

__all__ = ["generate_run"]
