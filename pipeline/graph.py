"""The DAG of a pipeline definition as a Mermaid ``flowchart TD`` (``dogpipe graph``, the README)."""

from __future__ import annotations

import re

from pipeline.dag import dependencies, parse_definition, walk_steps

_SHAPES = {"Condition": ("{", "}"), "Fail": ("[/", "/]")}


def _node_id(name: str) -> str:
    return re.sub(r"\W", "_", name)


def mermaid(json_text: str) -> str:
    """Nodes labelled with name and type; condition branches labelled ``if``/``else``.

    A step inside a branch is drawn from its condition and from siblings only: its data edges to steps
    upstream of the condition are implied, and drawing them would bury the branch structure.
    """
    definition = parse_definition(json_text)
    nodes = list(walk_steps(definition["Steps"]))
    graph = dependencies(definition)
    lines = ["flowchart TD"]
    for node in nodes:
        left, right = _SHAPES.get(node.type, ("[", "]"))
        lines.append(f'    {_node_id(node.name)}{left}"{node.name}<br/>{node.type}"{right}')
    parents = {node.name: node.parent for node in nodes}
    for node in nodes:
        for upstream in sorted(graph.get(node.name, ())):
            if node.parent and upstream != node.parent and parents.get(upstream) != node.parent:
                continue
            if upstream == node.parent:
                label = "if" if node.branch == "IfSteps" else "else"
                lines.append(f"    {_node_id(upstream)} -->|{label}| {_node_id(node.name)}")
            else:
                lines.append(f"    {_node_id(upstream)} --> {_node_id(node.name)}")
    return "\n".join(lines) + "\n"
