"""Tests of chainrule/fs/: files written atomically, only chainrule's own replaced."""
