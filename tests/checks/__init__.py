"""Tests of chainrule/checks/: verify's gradient checks and the accuracy in ulps."""
