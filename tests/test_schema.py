"""The published recipe JSON Schema is current, and recipes the engine accepts conform to it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from reelgraph.graphs.model import recipe_json_schema
from reelgraph.tests.helpers import TEMPLATES

PUBLISHED = Path(__file__).resolve().parent.parent / "schema" / "recipe.schema.json"


def test_published_schema_matches_the_model():
    assert json.loads(PUBLISHED.read_text()) == recipe_json_schema(), (
        "schema/recipe.schema.json is stale: regenerate it with `reelgraph schema > schema/recipe.schema.json`"
    )


def test_templates_conform_and_bad_forms_do_not():
    schema = recipe_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for template in TEMPLATES.glob("*.json"):
        validator.validate(json.loads(template.read_text()))
    bad = {"nodes": {"a": {"type": "x", "inputs": {"t": {"link": ["b"]}}}}}
    assert list(validator.iter_errors(bad))
    assert list(validator.iter_errors({"nodes": {"a": {"type": "x", "colour": 1}}}))
