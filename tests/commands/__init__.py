"""Tests of chainrule/commands/: each subcommand as a reader uses it."""
