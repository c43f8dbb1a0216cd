"""The Streamlit dashboard (``counterpoint.ui``): `app.py`, the pages in `views/` and their helpers.

Top floor: it may import the counterpoint base (errors, settings, schemas, jsonl, datasets), the SDK
(`counterpoint.client`) and, optionally, the training package's config validation; it talks to the
gateway through the SDK only and never imports the services.
"""
