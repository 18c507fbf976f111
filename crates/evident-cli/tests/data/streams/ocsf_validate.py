#!/usr/bin/env python3
"""Validates OCSF events against the OCSF 1.8.0 JSON Schema of their class, as the
`ocsf-json-schema` package (PyPI) generates it from the OCSF schema export it ships, with
`jsonschema` (Draft 2020-12). Reads JSON arrays of events, one per line, from FILE; prints
`class_uid count` per class and exits 1 on the first invalid event.

usage: ocsf_validate.py FILE
"""
import collections
import json
import sys

try:
    from jsonschema import Draft202012Validator
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
except ImportError as err:
    sys.exit(f"missing Python package ({err}): pip install ocsf-json-schema==1.2.0 jsonschema")

schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version="1.8.0"))
validators = {}
counts = collections.Counter()
with open(sys.argv[1]) as f:
    for line in f:
        if not line.strip():
            continue
        for event in json.loads(line):
            uid = event["class_uid"]
            if uid not in validators:
                class_schema = schema.get_class_schema(schema.lookup_class_name_from_uid(uid), profiles=[])
                validators[uid] = Draft202012Validator(class_schema)
            errors = sorted(validators[uid].iter_errors(event), key=lambda e: list(e.path))
            if errors:
                for error in errors:
                    print(f"class {uid}: {list(error.path)}: {error.message}", file=sys.stderr)
                print(json.dumps(event), file=sys.stderr)
                sys.exit(1)
            counts[uid] += 1
for uid, count in sorted(counts.items()):
    print(uid, count)
