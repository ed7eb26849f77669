"""Tests of chainrule/runs/: run folders, what they record, the training run."""
