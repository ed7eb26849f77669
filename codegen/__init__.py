"""codegen: the derivations printed as text (NumPy layers, LaTeX, Markdown, SVG), never written to disk here."""
