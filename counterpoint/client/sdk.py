"""`Client`: the SDK's one class, every resource's methods over one connection to one gateway."""

from __future__ import annotations

from counterpoint.client.backups import BackupsAPI
from counterpoint.client.collections import CollectionsAPI
from counterpoint.client.generation import GenerationAPI
from counterpoint.client.ingest import IngestAPI
from counterpoint.client.jobs import JobsAPI, KeysAPI
from counterpoint.client.models import ModelsAPI
from counterpoint.client.search import SearchAPI
from counterpoint.client.vectors import VectorsAPI


class Client(
    ModelsAPI, CollectionsAPI, IngestAPI, VectorsAPI, SearchAPI, JobsAPI, KeysAPI, BackupsAPI, GenerationAPI
):
    """Synchronous client of one Counterpoint gateway.

    ``Client(url=None, *, api_key=None, timeout=120.0, rate_limit_retries=3)``: ``url`` defaults to
    COUNTERPOINT_API_URL, ``api_key`` to the settings' (COUNTERPOINT_API_KEY, else the local admin key
    file). A request the key's rate limit refuses (429) waits out its Retry-After and is sent again,
    ``rate_limit_retries`` times at most, before `RateLimited` is raised.
    """
