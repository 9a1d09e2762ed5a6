"""Fixtures for the show-file tests (helpers live in ``cue_helpers``)."""

from __future__ import annotations

from tests.cues.cue_helpers import check, venue, write

__all__ = ["check", "venue", "write"]
