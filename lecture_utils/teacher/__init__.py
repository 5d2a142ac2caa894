"""Shared layer: the teacher. Task (one kind of call), the engine every call goes through, the sync client the
notebooks use, the wire format, cache/replay, prices, and the embedded llama.cpp teacher.

    from lecture_utils.teacher import connect      # the teacher the environment configures
"""

from lecture_utils.teacher.client import Teacher, TeacherConfig, connect

__all__ = ["Teacher", "TeacherConfig", "connect"]
