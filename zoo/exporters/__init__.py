"""The built-in export formats (each registers itself with :func:`zoo.export.exporter`)."""
