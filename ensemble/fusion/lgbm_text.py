"""LightGBM model text from a saved fusion, checked before it reaches LightGBM's native parser.

A stacked fusion keeps each booster as LightGBM's model text; the parser and predictor trust it (a tree whose
``left_child`` points outside the tree, or a header whose ``tree_sizes`` lie, is read out of bounds and kills
the process). ``safe_model_text`` parses the text in Python, checks every field a tree is made of (types,
counts, ranges, that the children form one tree over all nodes and leaves, no categorical or linear trees,
which ``stack`` never trains) and renders a fresh text from the checked values, with the ``tree_sizes``
computed here: LightGBM only ever reads text this module wrote. Format: LightGBM ``GBDT::SaveModelToString``
and ``Tree::ToString`` (src/boosting/gbdt_model_text.cpp, src/io/tree.cpp), version v4.
"""

from __future__ import annotations

import math
import re

from ensemble.errors import DataError

HEADER = ("version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx", "objective")
NAMES = ("feature_names", "feature_infos")
NODE_INTS = ("split_feature", "decision_type", "left_child", "right_child", "internal_count")
NODE_FLOATS = ("split_gain", "threshold", "internal_value", "internal_weight")
LEAF = ("leaf_value", "leaf_weight", "leaf_count")
TREE_KEYS = (
    "num_leaves", "num_cat", "split_feature", "split_gain", "threshold", "decision_type", "left_child",
    "right_child", "leaf_value", "leaf_weight", "leaf_count", "internal_value", "internal_weight",
    "internal_count", "is_linear", "shrinkage",
)  # fmt: skip
OBJECTIVES = {"regression", "binary", "multiclass"}
"""The objectives ``stack`` trains with."""
MAX_TREES, MAX_LEAVES, MAX_FEATURES, MAX_CLASSES = 100_000, 131_072, 100_000, 1_000
FEATURE_INFO = re.compile(r"none|\[[-+0-9.eE]+:[-+0-9.eE]+\]")
FEATURE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


class ModelTextError(DataError):
    """LightGBM model text that is not what ``stack`` saves."""


def _lines(block: str, label: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        key, eq, value = line.partition("=")
        if not eq or key in fields:
            raise ModelTextError(f"{label}: line {line[:40]!r} is not one 'key=value' of LightGBM model text")
        fields[key] = value
    return fields


def _int(value: str, label: str, low: int, high: int) -> int:
    if not re.fullmatch(r"-?[0-9]{1,10}", value) or not low <= int(value) <= high:
        raise ModelTextError(f"{label}: {value[:20]!r} is not an integer in [{low}, {high}]")
    return int(value)


def _numbers(value: str, n: int, label: str, kind: type, low: float = -math.inf, high: float = math.inf) -> list:
    items = value.split(" ") if value else []
    if len(items) != n:
        raise ModelTextError(f"{label}: {len(items)} value(s), the tree needs {n}")
    try:
        out = [kind(v) if kind is float else int(v, 10) for v in items]
    except ValueError:
        raise ModelTextError(f"{label}: holds a value that is not a {kind.__name__}") from None
    if not all(math.isfinite(v) and low <= v <= high for v in out):
        raise ModelTextError(f"{label}: holds a value out of range [{low}, {high}] or not finite")
    return out


def _check_children(left: list[int], right: list[int], leaves: int, label: str) -> None:
    """Every internal node but the root and every leaf is the child of exactly one node, all reachable."""
    seen_nodes, seen_leaves, todo = {0}, set(), [0]
    while todo:
        node = todo.pop()
        for child in (left[node], right[node]):
            if child >= 0:
                if child >= len(left) or child in seen_nodes:
                    raise ModelTextError(f"{label}: node {node} has child {child}: not one tree")
                seen_nodes.add(child)
                todo.append(child)
            elif ~child >= leaves or ~child in seen_leaves:
                raise ModelTextError(f"{label}: node {node} has leaf {~child}: not one tree")
            else:
                seen_leaves.add(~child)
    if len(seen_nodes) != len(left) or len(seen_leaves) != leaves:
        raise ModelTextError(f"{label}: nodes or leaves outside the tree")


def _check_tree(fields: dict[str, str], features: int, label: str) -> None:
    if tuple(fields) != TREE_KEYS:
        raise ModelTextError(f"{label}: fields {', '.join(fields)[:80]} are not those of a LightGBM v4 tree")
    leaves = _int(fields["num_leaves"], f"{label} num_leaves", 1, MAX_LEAVES)
    _int(fields["num_cat"], f"{label} num_cat (categorical splits are never trained)", 0, 0)
    _int(fields["is_linear"], f"{label} is_linear (linear trees are never trained)", 0, 0)
    _numbers(fields["shrinkage"], 1, f"{label} shrinkage", float)
    nodes = leaves - 1
    for key in NODE_FLOATS:
        _numbers(fields[key], nodes, f"{label} {key}", float)
    _numbers(fields["split_feature"], nodes, f"{label} split_feature", int, 0, features - 1)
    _numbers(fields["decision_type"], nodes, f"{label} decision_type", int, 0, 10)
    if any(d & 1 or (d >> 2) & 3 == 3 for d in _numbers(fields["decision_type"], nodes, label, int)):
        raise ModelTextError(f"{label} decision_type: a categorical or unknown split")
    _numbers(fields["internal_count"], nodes, f"{label} internal_count", int, 0, 2**62)
    _numbers(fields["leaf_value"], leaves, f"{label} leaf_value", float)
    _numbers(fields["leaf_weight"], leaves if nodes else 0, f"{label} leaf_weight", float)
    _numbers(fields["leaf_count"], leaves, f"{label} leaf_count", int, 0, 2**62)
    if nodes:
        left = _numbers(fields["left_child"], nodes, f"{label} left_child", int, -leaves, nodes - 1)
        right = _numbers(fields["right_child"], nodes, f"{label} right_child", int, -leaves, nodes - 1)
        _check_children(left, right, leaves, label)
    else:
        _numbers(fields["left_child"], 0, f"{label} left_child", int)
        _numbers(fields["right_child"], 0, f"{label} right_child", int)


def _check_header(header: dict[str, str], label: str) -> int:
    """The header's fields; returns the number of features."""
    if tuple(header) != (*HEADER, *NAMES, "tree_sizes") or header["version"] != "v4":
        raise ModelTextError(f"{label}: the header is not that of LightGBM v4 model text")
    classes = _int(header["num_class"], f"{label} num_class", 1, MAX_CLASSES)
    if _int(header["num_tree_per_iteration"], f"{label} num_tree_per_iteration", 1, MAX_CLASSES) != classes:
        raise ModelTextError(f"{label}: num_tree_per_iteration differs from num_class")
    _int(header["label_index"], f"{label} label_index", 0, 0)
    features = _int(header["max_feature_idx"], f"{label} max_feature_idx", 0, MAX_FEATURES - 1) + 1
    words = header["objective"].split(" ")
    if words[0] not in OBJECTIVES or not all(re.fullmatch(r"[a-z_]+:[-+0-9.eE]{1,24}", w) for w in words[1:]):
        raise ModelTextError(f"{label}: objective {header['objective'][:40]!r} is not one stack trains")
    names, infos = header["feature_names"].split(" "), header["feature_infos"].split(" ")
    if len(names) != features or not all(FEATURE_NAME.fullmatch(n) for n in names):
        raise ModelTextError(f"{label}: feature_names do not name {features} plain feature(s)")
    if len(infos) != features or not all(FEATURE_INFO.fullmatch(i) for i in infos):
        raise ModelTextError(f"{label}: feature_infos do not describe {features} feature(s)")
    return features


def _split(text: str, label: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    if not isinstance(text, str) or not text.startswith("tree\n") or "\nend of trees" not in text:
        raise ModelTextError(f"{label}: not LightGBM model text")
    body = text[len("tree\n") : text.index("\nend of trees")]
    head, _, trees_text = body.partition("\n\n")
    header = _lines(head, label)
    blocks = [b.strip("\n") for b in re.split(r"\n(?=Tree=)", "\n" + trees_text.strip("\n")) if b.strip("\n")]
    if len(blocks) > MAX_TREES:
        raise ModelTextError(f"{label}: {len(blocks)} trees, more than {MAX_TREES}")
    trees = []
    for i, block in enumerate(blocks):
        first, _, rest = block.partition("\n")
        if first != f"Tree={i}":
            raise ModelTextError(f"{label}: tree {i} is headed {first[:30]!r}")
        trees.append(_lines(rest, f"{label} tree {i}"))
    return header, trees


def safe_model_text(text: object, label: str, features: int | None = None) -> str:
    """LightGBM model text rendered afresh from ``text`` once every field is checked (see the module); with
    ``features``, the model must take that many. Anything else is a one-line ``ModelTextError``."""
    header, trees = _split(text, label)  # type: ignore[arg-type]
    found = _check_header(header, label)
    if features is not None and found != features:
        raise ModelTextError(f"{label}: the model takes {found} feature(s), the members give {features}")
    if not trees or len(trees) % int(header["num_tree_per_iteration"]):
        raise ModelTextError(f"{label}: {len(trees)} tree(s), not whole iterations")
    for i, tree in enumerate(trees):
        _check_tree(tree, found, f"{label} tree {i}")
    return render(header, trees)


def render(header: dict[str, str], trees: list[dict[str, str]]) -> str:
    """Model text as LightGBM writes it (``tree_sizes``: the length of each tree's block)."""
    blocks = [f"Tree={i}\n" + "\n".join(f"{k}={v}" for k, v in t.items()) + "\n\n\n" for i, t in enumerate(trees)]
    head = "".join(f"{k}={header[k]}\n" for k in (*HEADER, *NAMES))
    sizes = " ".join(str(len(b.encode())) for b in blocks)
    return f"tree\n{head}tree_sizes={sizes}\n\n" + "".join(blocks) + "end of trees\n\npandas_categorical:null\n"
