"""The built-in export formats (each registers itself with :func:`zoo.hub.export.exporter`)."""
