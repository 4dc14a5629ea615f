"""Which AWS calls a service's Lambda can make, read from its code.

Chalice's policy generator only reads ``app.py`` and misses calls made in
``shared/`` or through lazily created clients. This follows the imports from a
service's ``app.py`` (including imports inside functions, and only the
``Runtime`` properties the app actually uses) and maps the boto3 methods it
finds to IAM actions.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# boto3 method -> IAM actions. TransactWriteItems needs the item actions it carries.
METHOD_ACTIONS = {
    "get_object": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "list_objects_v2": {"s3:ListBucket"},
    "query": {"dynamodb:Query"},
    "get_item": {"dynamodb:GetItem"},
    "put_item": {"dynamodb:PutItem"},
    "update_item": {"dynamodb:UpdateItem"},
    "delete_item": {"dynamodb:DeleteItem"},
    "batch_writer": {"dynamodb:BatchWriteItem"},
    "create_table": {"dynamodb:CreateTable"},
    "list_tables": {"dynamodb:ListTables"},
    "publish": {"sns:Publish"},
    "create_topic": {"sns:CreateTopic"},
    "get_parameters": {"ssm:GetParameters"},
    "get_secret_value": {"secretsmanager:GetSecretValue"},
}
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# What every function needs whatever its code does: logs, and ENIs for the VPC.
BASELINE = {
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}


def module_path(name: str) -> Path | None:
    if not name.startswith("shared"):
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(node: ast.AST) -> set[str]:
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            found.update(a.name for a in child.names)
        elif isinstance(child, ast.ImportFrom) and child.module:
            found.add(child.module)
            found.update(f"{child.module}.{a.name}" for a in child.names)
    return {name for name in found if module_path(name)}


def _runtime_properties() -> dict[str, tuple[set[str], set[str]]]:
    """Runtime property -> (modules its body imports, other properties it uses)."""
    tree = ast.parse((ROOT / "shared" / "runtime.py").read_text())
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Runtime":
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    uses = {
                        a.attr
                        for a in ast.walk(item)
                        if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name) and a.value.id == "self"
                    }
                    out[item.name] = (_imports(item), uses)
    return out


def reachable_modules(service: str) -> set[Path]:
    app = ROOT / service / "app.py"
    tree = ast.parse(app.read_text())
    properties = _runtime_properties()
    used = {
        a.attr
        for a in ast.walk(tree)
        if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name) and a.value.id == "runtime"
    }
    used.add("settings")  # every app reads its settings
    todo, seen_props = list(used), set()
    names = set(_imports(tree)) - {"shared.runtime"}
    while todo:
        prop = todo.pop()
        if prop in seen_props or prop not in properties:
            continue
        seen_props.add(prop)
        modules, uses = properties[prop]
        names |= modules
        todo.extend(uses)
    files, todo = set(), list(names)
    while todo:
        path = module_path(todo.pop())
        if path is None or path in files or path.name == "runtime.py":
            continue
        files.add(path)
        todo.extend(_imports(ast.parse(path.read_text())))
    return files


def actions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            found |= METHOD_ACTIONS.get(method, set())
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                found |= METHOD_ACTIONS.get(node.args[0].value, set())
            if method == "transact_write_items":
                found.add("dynamodb:TransactWriteItems")
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and key.value in TRANSACT_ITEM_ACTIONS:
                    found.add(TRANSACT_ITEM_ACTIONS[key.value])
    # Transaction item keys count only in modules that run transactions.
    if "dynamodb:TransactWriteItems" not in found:
        found -= set(TRANSACT_ITEM_ACTIONS.values())
    found.discard("dynamodb:TransactWriteItems")  # not an IAM action: the item actions are
    return found


def service_actions(service: str) -> dict[str, set[str]]:
    """IAM action -> the files that need it."""
    out: dict[str, set[str]] = {}
    for path in sorted(reachable_modules(service)):
        for action in actions_in(path):
            out.setdefault(action, set()).add(str(path.relative_to(ROOT)))
    return out
