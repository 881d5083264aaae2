"""The DAG of a pipeline definition as a Mermaid ``flowchart TD`` (``dogpipe graph``, the README)."""

from __future__ import annotations

import re

from pipeline.definition.reader import parse_definition, steps_of

_SHAPES = {"Condition": ("{", "}"), "Fail": ("[/", "/]")}


def _node_id(name: str) -> str:
    return re.sub(r"\W", "_", name)


def mermaid(json_text: str) -> str:
    """Nodes labelled with name and type, and every dependency the engines honour: the edge from a
    condition to a step of its branches is labelled ``if``/``else``, the others (``DependsOn`` and data
    references, e.g. a branch step reading an upstream property file) are plain."""
    nodes = steps_of(parse_definition(json_text))
    lines = ["flowchart TD"]
    for node in nodes:
        left, right = _SHAPES.get(node.type, ("[", "]"))
        lines.append(f'    {_node_id(node.name)}{left}"{node.name}<br/>{node.type}"{right}')
    for node in nodes:
        for upstream in sorted(node.needs()):
            if upstream == node.parent:
                label = "if" if node.needed_outcome else "else"
                lines.append(f"    {_node_id(upstream)} -->|{label}| {_node_id(node.name)}")
            else:
                lines.append(f"    {_node_id(upstream)} --> {_node_id(node.name)}")
    return "\n".join(lines) + "\n"
