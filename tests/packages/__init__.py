"""Tests of chainrule/packages/: generated packages written, marked, imported."""
