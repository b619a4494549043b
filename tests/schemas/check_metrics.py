#!/usr/bin/env python3
"""Checks what nonced exported with real parsers: a /metrics exposition (prometheus_client's
OpenMetrics parser) and EMF lines (jsonschema against emf.schema.json, plus EMF's target-member rule).
Usage: check_metrics.py exposition FILE | emf SCHEMA FILE. Prints a JSON summary; exits 1
with the reason when something does not parse or validate."""
import json
import sys


def exposition(path):
    # nonced serves OpenMetrics text (its Content-Type says so), so its own parser reads it:
    # strict about `# EOF`, names, counters' `_total` and histogram buckets. (The classic
    # text-format parser would accept it too, but files each counter's `_total` sample under
    # an untyped family of its own.)
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    text = open(path).read()
    out = {}
    for family in text_string_to_metric_families(text):
        if family.type == "unknown":
            sys.exit(f"{family.name}: no TYPE (a sample outside its family?)")
        for s in family.samples:
            key = s.name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            if key in out:
                sys.exit(f"{key}: twice")
            out[key] = s.value
            out["#family " + key] = family.name
        out["#type " + family.name] = family.type
        out["#unit " + family.name] = family.unit
    # A scraper that asks for the classic text format still gets the same numbers.
    from prometheus_client.parser import text_string_to_metric_families as classic
    for family in classic(text):
        for s in family.samples:
            key = s.name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            if out.get(key) != s.value:
                sys.exit(f"{key}: {s.value} in the classic parser, {out.get(key)} in OpenMetrics")
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
