"""Tests of codegen/: the printers, documents, figures and translations."""
