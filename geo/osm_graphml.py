"""OSMnx GraphML -> the compact node and edge tables bundled in ``geo/data``.

Run by hand when a road network is added or refreshed, never by the server::

    python -m geo.osm_graphml SOURCE.graphml geo/data/<dataset>/

It writes ``nodes.csv.gz`` (``osmid,lon,lat,street_count,highway``) and ``edges.csv.gz``
(``u,v,key,osmid,length_m,highway,oneway,name,maxspeed,lanes,oneway_unresolved,
geometry_wkt``), one row per directed edge exactly as the GraphML lists it. Values are
copied as text; the only change is rounding (lengths to 1 mm, coordinates inside the
WKT kept as written). gzip keeps the two Shenzhen tables at about a fifth of the GraphML.
Parsing is pure (:func:`parse_graphml` takes the XML text), so tests feed it a string.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Final

NODE_COLUMNS: Final = ("osmid", "lon", "lat", "street_count", "highway")
EDGE_COLUMNS: Final = (
    "u",
    "v",
    "key",
    "osmid",
    "length_m",
    "highway",
    "oneway",
    "name",
    "maxspeed",
    "lanes",
    "oneway_unresolved",
    "geometry_wkt",
)
_NS: Final = "{http://graphml.graphdrawing.org/xmlns}"
# GraphML attribute name -> our column name (where they differ).
_RENAME: Final = {
    "x": "lon",
    "y": "lat",
    "length": "length_m",
    "geometry": "geometry_wkt",
    "oneway_tag_unresolved": "oneway_unresolved",
}


def parse_graphml(text: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Node rows and edge rows (our column names, values as text) of an OSMnx GraphML."""
    root = ET.fromstring(text)
    names: dict[str, str] = {}
    for key in root.iter(f"{_NS}key"):
        name = key.get("attr.name", "")
        names[key.get("id", "")] = _RENAME.get(name, name)
    graph = root.find(f"{_NS}graph")
    if graph is None:
        raise ValueError("not a GraphML document: no <graph> element")

    def data(element: ET.Element) -> dict[str, str]:
        return {names.get(d.get("key", ""), ""): (d.text or "") for d in element.iter(f"{_NS}data")}

    nodes: list[dict[str, str]] = []
    for node in graph.iter(f"{_NS}node"):
        values = data(node)
        row = {column: values.get(column, "") for column in NODE_COLUMNS}
        row["osmid"] = node.get("id", "")
        nodes.append(row)
    edges: list[dict[str, str]] = []
    for edge in graph.iter(f"{_NS}edge"):
        values = data(edge)
        row = {column: values.get(column, "") for column in EDGE_COLUMNS}
        row["u"], row["v"], row["key"] = (
            edge.get("source", ""),
            edge.get("target", ""),
            edge.get("id", "0"),
        )
        row["length_m"] = f"{float(values['length_m']):.3f}"
        edges.append(row)
    return nodes, edges


def write_table(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    """Rows as a gzip-compressed UTF-8 CSV with a header (mtime 0: same input, same bytes)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        out.write(buffer.getvalue().encode("utf-8"))


def main(argv: list[str]) -> int:
    """``python -m geo.osm_graphml SOURCE.graphml DEST_DIR``."""
    if len(argv) != 2:
        print("usage: python -m geo.osm_graphml SOURCE.graphml DEST_DIR", file=sys.stderr)
        return 2
    source, dest = Path(argv[0]), Path(argv[1])
    nodes, edges = parse_graphml(source.read_text(encoding="utf-8"))
    dest.mkdir(parents=True, exist_ok=True)
    write_table(dest / "nodes.csv.gz", NODE_COLUMNS, nodes)
    write_table(dest / "edges.csv.gz", EDGE_COLUMNS, edges)
    print(f"{len(nodes)} nodes, {len(edges)} edges -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
