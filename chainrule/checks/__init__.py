"""What ``chainrule verify`` checks: gradients three ways, and each kernel's accuracy in ulps."""
