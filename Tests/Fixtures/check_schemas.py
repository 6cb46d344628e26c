#!/usr/bin/env python3
"""Checks the event interface under Topics/ against itself.

- every schema in Topics/schemas is a valid draft 2020-12 schema whose $id and `schema` const match its file name;
- every example in Topics/examples validates against the schema its `schema` field names, and obeys the rules
  only the decoder enforces (the pre-sale window, bucket shares summing to 1 per dimension, a recommendation's
  items sorted by probability descending and each listed once);
- every invalid example in Topics/examples/invalid ({"event": ..., "violation": "<field path>"}) fails its schema
  at exactly that path; one whose violation is decoder-only (window, shares sum, items order, repeated item) must
  instead pass the schema and break that rule;
- every topic spec in Topics/topics has the same keys, is named after its file, names existing schemas, and agrees
  on partitions and partitioner with the topics it is co-partitioned with.

Needs the `jsonschema` package (pip install jsonschema). Exits 1 with one line per problem, or prints a summary.
Usage: check_schemas.py [TOPICS_DIR]   (default: the repository's Topics/)
"""
import json
import pathlib
import re
import sys

try:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
except ImportError:
    sys.exit("check_schemas: the jsonschema package is missing; install it with: python3 -m pip install jsonschema")

PRESALE_DAYS = 20          # the decoder's default pre-sale window
SHARE_TOLERANCE = 0.01
SHARE_FIELDS = ("buyers", "su")
ID_BASE = "https://promo-stream.invalid/schemas/"
TOPIC_KEYS = {"name", "description", "key", "value_schema", "value_format", "partitions", "co_partitioned_with",
              "partitioner", "replication_factor", "config"}
VALUE_FORMATS = {"json", "json+raw_chunks", "binary"}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        problem(path, f"not readable JSON ({e})")
        return None


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def decoder_rule_violations(event):
    """The rules JSON Schema cannot express, as the decoder applies them: (field path, reason) pairs."""
    out = []
    day = event.get("day")
    if isinstance(day, int) and not isinstance(day, bool) and day > PRESALE_DAYS:
        out.append(("day", f"must be within the pre-sale window 1...{PRESALE_DAYS}, got {day}"))
    for field in SHARE_FIELDS:
        shares = event.get(field)
        if not isinstance(shares, dict):
            continue
        sums = {}
        for name, value in shares.items():
            if is_number(value):
                dimension = name.split("_", 1)[0]
                sums[dimension] = sums.get(dimension, 0.0) + value
        for dimension, total in sorted(sums.items()):
            if abs(total - 1) > SHARE_TOLERANCE:
                out.append((f"{field}.{dimension}", f"shares must sum to 1 (±{SHARE_TOLERANCE}), got {total:g}"))
    items = event.get("items") if event.get("schema") == "recommendation/1" else None
    if isinstance(items, list):
        seen = {}
        previous = None
        for i, entry in enumerate(items):
            if not isinstance(entry, dict):
                continue
            item = entry.get("item_id")
            if isinstance(item, str):
                if item in seen:
                    out.append((f"items[{i}].item_id", f"duplicates items[{seen[item]}].item_id"))
                else:
                    seen[item] = i
            probability = entry.get("probability")
            if is_number(probability):
                if previous is not None and probability > previous:
                    out.append((f"items[{i}].probability", "items must be sorted by probability, descending"))
                previous = probability
    return out


def error_paths(error):
    """The field paths a jsonschema error is about, written like the decoder's (`sales.units`, `ss_probs[3]`)."""
    def join(parts):
        out = ""
        for part in parts:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out
    base = list(error.absolute_path)
    if error.validator in ("required", "dependentRequired") and isinstance(error.instance, dict):
        if error.validator == "required":
            missing = [r for r in error.validator_value if r not in error.instance]
        else:
            missing = [r for needs in error.validator_value.values() for r in needs if r not in error.instance]
        if missing:
            return [join(base + [m]) for m in missing]
    return [join(base)]


def main():
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2] / "Topics"
    for sub in ("schemas", "examples", "topics"):
        if not (root / sub).is_dir():
            sys.exit(f"check_schemas: {root / sub} is not a directory")

    # Schemas, by schema id.
    validators = {}
    for path in sorted((root / "schemas").glob("*.schema.json")):
        schema = load(path)
        if schema is None:
            continue
        m = re.fullmatch(r"([a-z_]+)\.([0-9]+)\.schema\.json", path.name)
        if not m:
            problem(path, "file name is not <type>.<major>.schema.json")
            continue
        schema_id = f"{m[1]}/{m[2]}"
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            problem(path, f"not a valid draft 2020-12 schema: {e.message}")
            continue
        if schema.get("$id") != ID_BASE + schema_id:
            problem(path, f"$id is {schema.get('$id')!r}, expected {ID_BASE + schema_id!r}")
        if schema.get("properties", {}).get("schema", {}).get("const") != schema_id:
            problem(path, f"properties.schema.const is not {schema_id!r}")
        if schema.get("additionalProperties") is not True:
            problem(path, "top-level additionalProperties must be true (unknown fields are ignored)")
        validators[schema_id] = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def validator_for(where, event):
        if not isinstance(event, dict):
            problem(where, "not a JSON object")
            return None
        schema_id = event.get("schema")
        if schema_id not in validators:
            problem(where, f"schema {schema_id!r} has no valid schema in {root / 'schemas'}")
            return None
        return validators[schema_id]

    # Valid examples: one per schema.
    examples = 0
    covered = set()
    for path in sorted((root / "examples").glob("*.json")):
        event = load(path)
        v = validator_for(path, event) if event is not None else None
        if v is None:
            continue
        schema_id = event["schema"]
        if path.name != schema_id.replace("/", ".") + ".json":
            problem(path, f"an example of {schema_id} must be named {schema_id.replace('/', '.')}.json")
        covered.add(schema_id)
        for e in v.iter_errors(event):
            problem(path, f"{error_paths(e)[0] or '(top level)'}: {e.message}")
        for field, reason in decoder_rule_violations(event):
            problem(path, f"{field}: {reason} (decoder rule)")
        examples += 1
    for schema_id in sorted(set(validators) - covered):
        problem(root / "examples", f"no example of {schema_id}")

    # Invalid examples.
    rejected = decoder_only = 0
    for path in sorted((root / "examples" / "invalid").glob("*.json")):
        case = load(path)
        if case is None:
            continue
        if not isinstance(case, dict) or set(case) != {"event", "violation"} or not isinstance(case["violation"], str):
            problem(path, 'must be {"event": {...}, "violation": "<field path>"}')
            continue
        event, violation = case["event"], case["violation"]
        v = validator_for(path, event)
        if v is None:
            continue
        errors = list(v.iter_errors(event))
        rule_paths = [field for field, _ in decoder_rule_violations(event)]
        if violation in rule_paths:
            # Decoder-only: the schema cannot see it, so the event must pass the schema and break only that rule.
            if errors:
                problem(path, f"decoder-only violation {violation!r}, but the schema also rejects it: {errors[0].message}")
            elif rule_paths != [violation]:
                problem(path, f"breaks decoder rules at {rule_paths}, expected only {violation!r}")
            decoder_only += 1
            continue
        if not errors:
            problem(path, f"passes its schema, but should fail at {violation!r}")
            continue
        paths = sorted({p for e in errors for p in error_paths(e)})
        if paths != [violation]:
            problem(path, f"fails its schema at {paths}, expected only {violation!r}")
        if rule_paths:
            problem(path, f"also breaks decoder rules at {rule_paths}")
        rejected += 1

    # Topic specs.
    topics = {}
    for path in sorted((root / "topics").glob("*.json")):
        spec = load(path)
        if spec is None:
            continue
        if not isinstance(spec, dict) or set(spec) != TOPIC_KEYS:
            keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
            problem(path, f"keys are {keys}, expected {sorted(TOPIC_KEYS)}")
            continue
        topics[spec["name"]] = (path, spec)
        if path.name != f"{spec['name']}.json":
            problem(path, f"name {spec['name']!r} does not match the file name")
        if not isinstance(spec["value_schema"], list):
            problem(path, "value_schema must be a list of schema ids")
        else:
            for schema_id in spec["value_schema"]:
                if schema_id not in validators:
                    problem(path, f"value_schema {schema_id!r} has no valid schema in {root / 'schemas'}")
        if spec["value_format"] not in VALUE_FORMATS:
            problem(path, f"value_format {spec['value_format']!r} is not one of {sorted(VALUE_FORMATS)}")
        elif spec["value_format"] != "binary" and not spec["value_schema"]:
            problem(path, f"value_format {spec['value_format']!r} needs a value_schema")
        for field in ("partitions", "replication_factor"):
            if not isinstance(spec[field], int) or isinstance(spec[field], bool) or spec[field] < 1:
                problem(path, f"{field} must be an integer ≥ 1")
        config = spec["config"]
        if not isinstance(config, dict) or not all(isinstance(v, str) for v in config.values()):
            problem(path, "config must be an object of strings")
            continue
        for required in ("cleanup.policy", "retention.ms", "min.insync.replicas"):
            if required not in config:
                problem(path, f"config lacks {required}")
        if config.get("cleanup.policy") not in ("compact", "delete"):
            problem(path, f"cleanup.policy {config.get('cleanup.policy')!r} is not compact or delete")
        for name, value in config.items():
            if name.endswith((".ms", ".bytes", ".replicas")) and not re.fullmatch(r"-?[0-9]+", value):
                problem(path, f"config {name} = {value!r} is not an integer")
        if isinstance(spec["replication_factor"], int) and re.fullmatch(r"[0-9]+", config.get("min.insync.replicas", "")):
            if int(config["min.insync.replicas"]) >= spec["replication_factor"]:
                problem(path, "min.insync.replicas must be below replication_factor (or one broker down stops writes)")
    for name, (path, spec) in topics.items():
        for other in spec["co_partitioned_with"]:
            if other not in topics:
                problem(path, f"co_partitioned_with names unknown topic {other!r}")
                continue
            o = topics[other][1]
            if name not in o["co_partitioned_with"]:
                problem(path, f"co-partitioned with {other}, but {other} does not list {name}")
            for field in ("partitions", "partitioner"):
                if o[field] != spec[field]:
                    problem(path, f"{field} {spec[field]!r} differs from co-partitioned {other}'s {o[field]!r}")
    for schema_id in sorted(set(validators) - {s for _, t in topics.values() for s in t["value_schema"]}):
        problem(root / "topics", f"no topic carries {schema_id}")

    if problems:
        print("\n".join(f"check_schemas: {p}" for p in problems), file=sys.stderr)
        print(f"check_schemas: FAILED, {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_schemas: ok: {len(validators)} schemas, {examples} examples valid, "
          f"{rejected} invalid examples rejected by their schema, {decoder_only} decoder-only checked by rule, "
          f"{len(topics)} topic specs consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
