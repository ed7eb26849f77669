"""Generated packages: the marker that lists their files (`marker`), the one importer (`importer`), writing one (`write`).

A package made with ``generate --spec FILE --out DIR`` keeps a copy of its spec and
says so in its marker, so ``verify --package DIR``, ``train --package DIR`` and
``generate --package DIR`` need nothing but the folder.  The generated/ of an
installed chainrule is never rewritten: only a source checkout's is.

A package is code, so it is imported only as ``chainrule.packages.importer`` checks it: the
marker lists every file with its SHA-256 and carries this account's seal of that whole list
(``chainrule.packages.marker``), and only the modules' checked bytes run.
"""
