"""The results store: run directories written atomically, the ``run.json`` schema, importers."""
