"""chainrule: backpropagation derived, generated and verified."""
