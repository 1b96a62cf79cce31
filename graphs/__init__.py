"""Recipe graphs: the document model, its JSON Schema, validation and ComfyUI API-format conversion."""

from .errors import GraphError, RecipeInvalid
from .model import Link, LiteralObject, NodeSpec, ParamRef, ParamSpec, Recipe, recipe_json_schema
from .validate import BoundNode, BoundRecipe, bind_recipe, load_and_bind, parse_recipe

__all__ = [
    "BoundNode",
    "BoundRecipe",
    "GraphError",
    "Link",
    "LiteralObject",
    "NodeSpec",
    "ParamRef",
    "ParamSpec",
    "Recipe",
    "RecipeInvalid",
    "bind_recipe",
    "load_and_bind",
    "parse_recipe",
    "recipe_json_schema",
]
