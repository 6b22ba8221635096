"""One module per analysis; each takes arrays and returns frozen results (definitions: docs/science.md)."""
