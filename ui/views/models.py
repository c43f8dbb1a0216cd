"""Models: what the gateway serves, and the MLflow model registry with versions, metrics and aliases.

Everything goes through the SDK: the registry listing, moving the ``champion`` alias and deploying a
version to the embedding service (``POST /v1/models``), so the page works wherever the gateway does.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from counterpoint.schemas import RegisteredModel
from counterpoint.ui import common, formatting

CHAMPION = "champion"


def version_rows(model: RegisteredModel) -> list[dict[str, Any]]:
    """One row per version (newest first) with its aliases and its run's evaluation metrics."""
    return [
        {
            "version": v.version,
            "aliases": ", ".join(v.aliases),
            "uri": v.uri,
            "status": v.status or "—",
            "created": formatting.fmt_time(v.created_at) if v.created_at else "—",
            "run": (v.run_id or "")[:8],
            "type": v.model_type,
            **{k: round(val, 4) for k, val in sorted(v.metrics.items())},
        }
        for v in model.versions
    ]


def registered_model(cp: Any, model: RegisteredModel, served: set[str]) -> None:
    name = model.name
    with st.container(border=True):
        head, link = st.columns([4, 1])
        badge = (
            f" :green-badge[:material/trophy: {CHAMPION}: v{model.aliases[CHAMPION]}]"
            if CHAMPION in model.aliases
            else ""
        )
        head.markdown(f"#### {name}{badge}")
        if model.description:
            head.caption(model.description)
        link.link_button("MLflow", common.mlflow_model_url(name), icon=":material/book_2:", width="stretch")
        rows = version_rows(model)
        if not rows:
            st.caption("No versions.")
            return
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        versions = [r["version"] for r in rows]
        c1, c2, c3 = st.columns([2, 2, 3])
        current = str(model.aliases.get(CHAMPION, versions[0]))
        chosen = c1.selectbox(
            "version",
            versions,
            index=versions.index(current) if current in versions else 0,
            key=f"ver-{name}",
        )
        clicked = c2.button(
            f"Set as {CHAMPION}", key=f"champ-{name}", icon=":material/trophy:", width="stretch"
        )
        if clicked and common.call(cp.set_alias, name, chosen, CHAMPION, spinner="setting the alias"):
            st.session_state["models_flash"] = f"`models:/{name}@{CHAMPION}` now points to version {chosen}."
            st.rerun()
        version = next(v for v in model.versions if v.version == chosen)
        kind, service = (
            ("reranker", "rerank") if version.model_type == "cross-encoder" else ("embedding", "embed")
        )
        backends = ["torch", *sorted(b for b, status in version.exports.items() if status == "servable")]
        backend = c3.selectbox(
            "backend",
            backends,
            key=f"backend-{name}",
            help="How the replica runs it: torch, or an export stored with this version "
            "(`counterpoint models export`)."
            + "".join(
                f"\n\n{b}: {status}" for b, status in sorted(version.exports.items()) if status != "servable"
            ),
        )
        uri = f"models:/{name}/{chosen}" + ("" if backend == "torch" else f"?backend={backend}")
        deployed = uri in served
        if c3.button(
            "Serving" if deployed else f"Deploy to the {service} service",
            key=f"deploy-{name}",
            icon=":material/deployed_code:",
            disabled=deployed,
            width="stretch",
            help=f"Loads {uri} into the {service} service; requests name it as `{uri}`"
            + (f" or `models:/{name}@{CHAMPION}`." if backend == "torch" else "."),
        ):
            card = common.call(
                cp.deploy_model, f"models:/{name}/{chosen}", kind=kind,
                backend=None if backend == "torch" else backend, spinner=f"loading {uri}",
            )  # fmt: skip
            if card is not None:
                what = f"{card.dimensions} dimensions" if card.dimensions else f"by the {service} service"
                st.session_state["models_flash"] = (
                    f"`{card.id}` is served ({what}, {card.backend or 'torch'})."
                )
                st.rerun()


# --- page ------------------------------------------------------------------------------------

common.page_header("Models", "What the gateway serves, and the MLflow model registry.")
cp = common.require_gateway()
if flash := st.session_state.pop("models_flash", None):
    st.success(flash, icon=":material/trophy:")

st.subheader("Served by the gateway")
served = common.call(cp.models, spinner="asking the gateway") or []
if served:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "id": m.id,
                    "kind": m.kind,
                    "dimensions": m.dimensions,
                    "backend": m.backend,
                    "context length": getattr(m, "context_length", None),
                    "owned by": m.owned_by,
                }
                for m in served
            ]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("The gateway serves no model.")

st.subheader("Registered in MLflow")
registered = common.call(cp.registered_models, spinner="reading the model registry")
if registered is None:
    st.stop()
if not registered:
    st.info("No registered models yet: a training job with `register_as: NAME` registers its result.")
for model in registered:
    registered_model(cp, model, {m.id for m in served})
st.caption(
    f"The `{CHAMPION}` alias is what `models:/NAME@{CHAMPION}` means everywhere: the gateway follows a "
    "moved alias within seconds for embeddings; a collection keeps the version its vectors came from."
)
