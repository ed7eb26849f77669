"""Files as chainrule writes and reads them: atomically, only its own, never through a link."""
