"""Accuracy metrics (value only): written by a helper; temporary stub replaced shortly."""
