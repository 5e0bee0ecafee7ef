#!/usr/bin/env python3
"""Converts the EEA39 tile KML into eea39_tiles.tsv (one "<tile>\t<LL_WKT>" line per placemark, KML order).

Rerun (from the repository root), with the original KML described in SOURCES.md:
    python3 job_types/data/convert_eea39.py path/to/eea39_tiles_wgs84.kml > job_types/data/eea39_tiles.tsv
"""
import sys
import xml.etree.ElementTree as ET

NS = {"k": "http://www.opengis.net/kml/2.2"}
placemarks = ET.parse(sys.argv[1]).getroot().iterfind(".//k:Placemark", NS)
for pm in placemarks:
    name = pm.findtext("k:name", namespaces=NS).strip()
    data = {d.get("name"): (d.text or "").strip() for d in pm.iterfind(".//k:SimpleData", NS)}
    assert data["TILE_ID"] == name, name
    assert data["LL_WKT"].startswith("POLYGON (("), name
    sys.stdout.write(f"{name}\t{data['LL_WKT']}\n")
