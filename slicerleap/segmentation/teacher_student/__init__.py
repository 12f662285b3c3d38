"""Teacher–student from boxes (METHODS.md §3): the box-guided teacher and the student nets, their training and
pseudo-labels, and how likely a pseudo-label is wrong (uncertainty.py)."""
