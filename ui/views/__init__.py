"""The dashboard's pages, one module each; they use the helpers in ``counterpoint.ui`` and the SDK."""
