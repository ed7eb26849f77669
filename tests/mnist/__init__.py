"""Tests of chainrule/mnist/: the IDX format, the files found, the decoded cache, the download."""
