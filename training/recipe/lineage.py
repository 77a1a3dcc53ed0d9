"""The lineage graph of a recipe run, read from its stages' manifests.

Nodes are the recipe's stages (kind, recipe hash, the manifest's config hash) and the external
inputs their manifests name (base model, data files, reward model, prompt sets), each with the
hash the manifest recorded. Edges come from each manifest's ``inputs``: ``{role, path, sha256}``
(``training_manifest.json``), or ``{role, path, files: {name: sha256}}`` (``merge_manifest.json``).
An input whose path lies inside another stage's output directory is an edge from that stage (a
moved recipe directory is matched by the ``<stage>-<hash12>`` directory name); any other input is
an external node, one per (path, hash). Hashes are copied as the manifests hold them, never
recomputed: the report shows what the stages recorded.

:func:`lineage_svg` draws the graph as inline SVG (graphviz is not assumed): one column per
depth (external inputs first), arrows labelled with their roles (parallel edges share one).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from glotbench.training.recipe.resolve import finished


def lineage(record: dict, root: Path) -> dict:
    """``{"nodes": [...], "edges": [...]}``; stage nodes in recipe order, then external inputs."""
    stages = {name: record["stages"][name] for name in record["order"]}
    outs = {name: located(root, e["output"]) for name, e in stages.items()}
    nodes: list[dict] = []
    edges: list[dict] = []
    external: dict[tuple[str, str], str] = {}
    for name, entry in stages.items():
        manifest = finished(outs[name])
        node = {"id": name, "type": "stage", "kind": entry["kind"], "sha256": entry["sha256"],
                "output": str(outs[name]), "state": entry.get("state"),
                "manifest": None if manifest is None else str(manifest)}
        nodes.append(node)
        if manifest is None:
            continue  # not finished: no lineage recorded yet (shown as such)
        data = json.loads(manifest.read_text(encoding="utf-8"))
        node.update(manifest_file=manifest.name, config_sha256=data.get("config_sha256"),
                    method=data.get("method"), created_utc=data.get("created_utc"))
        for item in data.get("inputs") or []:
            source = stage_of(item.get("path"), outs)
            if source is None:
                key = (str(item.get("path") or item.get("model") or item.get("spec") or "?"), identity(item))
                if key not in external:
                    external[key] = f"input-{len(external) + 1}"
                    nodes.append({"id": external[key], "type": "input", "role": item.get("role"),
                                  "path": key[0], "model": item.get("model") or item.get("spec")})
                source = external[key]
            edge = {"from": source, "to": name, "role": item.get("role"), "path": item.get("path"),
                    "sha256": item.get("sha256")}
            if item.get("files"):
                edge["files"] = item["files"]
            edges.append(edge)
    for node in nodes:  # an input's hash, and a stage's output's: what its consumers recorded
        read = list(dict.fromkeys(edge_hash(e) for e in edges if e["from"] == node["id"]))
        if node["type"] == "input":
            node["sha256"] = next(e.get("sha256") for e in edges if e["from"] == node["id"])
        else:
            node["read_as"] = read
    return {"nodes": nodes, "edges": edges}


def located(root: Path, output: str) -> Path:
    """A stage's output directory where it is now (the recipe directory may have moved)."""
    recorded = Path(output)
    return recorded if recorded.is_dir() else Path(root) / recorded.name


def stage_of(path: str | None, outs: dict[str, Path]) -> str | None:
    """The stage whose output directory holds ``path`` (or one named like it), if any."""
    if not path:
        return None
    p = Path(path)
    for name, out in outs.items():
        if p == out or out in p.parents or out.name in p.parts:
            return name
    return None


def identity(item: dict) -> str:
    if item.get("sha256"):
        return str(item["sha256"])
    if item.get("files"):
        return json.dumps(item["files"], sort_keys=True)
    return ""


def edge_hash(edge: dict) -> str:
    """The hash an edge carries: its sha256, or a merge input's ``file sha256`` per file."""
    files = edge.get("files") or {}
    return edge.get("sha256") or ", ".join(f"{k} {v}" for k, v in files.items()) or "none recorded"


def depths(graph: dict) -> dict[str, int]:
    """Column of each node: external inputs 0, a stage one right of its deepest parent."""
    parents: dict[str, list[str]] = {n["id"]: [] for n in graph["nodes"]}
    for e in graph["edges"]:
        parents[e["to"]].append(e["from"])
    kinds = {n["id"]: n["type"] for n in graph["nodes"]}
    out: dict[str, int] = {}

    def depth(node: str) -> int:
        if node not in out:  # the stages come in dependency order, so the recursion is shallow
            out[node] = 0 if kinds[node] == "input" else 1 + max((depth(p) for p in parents[node]), default=0)
        return out[node]

    return {n["id"]: depth(n["id"]) for n in graph["nodes"]}


BOX_W, BOX_H, GAP_X, GAP_Y = 230, 54, 120, 22


def lineage_svg(graph: dict) -> str:
    """The graph as an inline ``<svg>``: boxes (stage: kind and hash; input: role, file name and
    hash), one column per depth, arrows labelled with the role; full hashes in tooltips."""
    col = depths(graph)
    columns: dict[int, list[dict]] = {}
    for n in graph["nodes"]:
        columns.setdefault(col[n["id"]], []).append(n)
    pos = {}
    for c, members in columns.items():
        for r, n in enumerate(members):
            pos[n["id"]] = (10 + c * (BOX_W + GAP_X), 10 + r * (BOX_H + GAP_Y))
    width = 20 + (max(columns) + 1) * (BOX_W + GAP_X) - GAP_X
    height = 20 + max(len(m) for m in columns.values()) * (BOX_H + GAP_Y) - GAP_Y
    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="lineage-graph" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    drawn: dict[tuple[str, str], list[dict]] = {}  # parallel edges (DPO's policy and reference): one arrow
    for edge in graph["edges"]:
        drawn.setdefault((edge["from"], edge["to"]), []).append(edge)
    for (src, dst), group in drawn.items():
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        ax, ay, bx, by = x0 + BOX_W, y0 + BOX_H / 2, x1, y1 + BOX_H / 2
        roles = ", ".join(str(g["role"]) for g in group)
        hashes = "; ".join(f'{g["role"]}: {edge_hash(g)}' for g in group)
        out.append(f'<g class="edge"><title>{e(src)} → {e(dst)}: {e(hashes)}</title>'
                   f'<line x1="{ax}" y1="{ay}" x2="{bx}" y2="{by}" stroke="#555" marker-end="url(#arrow)"/>'
                   f'<text x="{(ax + bx) / 2}" y="{(ay + by) / 2 - 3}" text-anchor="middle" fill="#555">'
                   f'{e(roles)}</text></g>')
    for n in graph["nodes"]:
        x, y = pos[n["id"]]
        stage = n["type"] == "stage"
        top = f'{n["id"]} ({n["kind"]})' if stage else f'{n.get("role")}: {Path(n["path"]).name}'
        sha = n.get("sha256") or ""
        bottom = f"recipe {sha[:12]}" if stage else (f"sha256 {sha[:12]}" if sha else "hashes per file")
        out.append(f'<g class="node" data-id="{e(n["id"])}"><title>{e(n.get("output") or n["path"])}\n'
                   f'sha256 {e(sha)}</title><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
                   f'fill="{"#dbe9f6" if stage else "#f3f3f3"}" stroke="{"#2c7bb6" if stage else "#999"}"/>'
                   f'<text x="{x + 8}" y="{y + 21}" font-weight="{"bold" if stage else "normal"}">{e(top[:34])}</text>'
                   f'<text x="{x + 8}" y="{y + 40}" font-family="monospace">{e(bottom)}</text></g>')
    out.append("</svg>")
    return "".join(out)
