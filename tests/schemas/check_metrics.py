#!/usr/bin/env python3
"""Checks what nonced exported with real parsers: a /metrics exposition (prometheus_client's
text parser) and EMF lines (jsonschema against emf.schema.json, plus EMF's target-member rule).
Usage: check_metrics.py exposition FILE | emf SCHEMA FILE. Prints a JSON summary; exits 1
with the reason when something does not parse or validate."""
import json
import sys


def exposition(path):
    from prometheus_client.parser import text_string_to_metric_families
    text = open(path).read()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            out[key] = s.value
        out["#type " + family.name] = family.type
    print(json.dumps(out))


def emf(schema_path, path):
    import jsonschema
    schema = json.load(open(schema_path))
    docs = []
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        if "_aws" not in doc:
            continue  # an ordinary log line
        jsonschema.validate(doc, schema)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for m in directive["Metrics"]:
                if not isinstance(doc.get(m["Name"]), (int, float)):
                    sys.exit(f"metric {m['Name']} has no numeric value: {line}")
            for dims in directive["Dimensions"]:
                for d in dims:
                    if not isinstance(doc.get(d), str):
                        sys.exit(f"dimension {d} has no string value: {line}")
        docs.append(doc)
    if not docs:
        sys.exit("no EMF line found")
    print(json.dumps({"documents": len(docs), "last": docs[-1]}))


if __name__ == "__main__":
    try:
        if sys.argv[1] == "exposition":
            exposition(sys.argv[2])
        else:
            emf(sys.argv[2], sys.argv[3])
    except Exception as e:  # noqa: BLE001 - the reason goes to the test
        sys.exit(f"{type(e).__name__}: {e}")
