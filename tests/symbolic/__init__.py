"""Tests of symbolic/: the derivations, the spec language, the proofs."""
