"""The one check of every user-given name that becomes a file path or an AWS resource name.

A name typed on the command line (or read from a ``--definition`` file) ends up joined onto a folder of
the local store (``endpoints/<name>.json``, ``registry/<group>/<version>.json``, ``executions/<id>/``)
or sent to SageMaker. Each kind has the format SageMaker itself accepts, so a name that passes here is
one AWS would take too, and ``../registry/x`` or ``/etc/x`` never reaches ``open()``. Paths built from a
checked name go through :func:`path_under` as well: a second line of defence that resolves the result
(symlinks included) and refuses anything outside its folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: The region and account of every ARN the local engine makes (there is no AWS account behind them).
LOCAL_REGION = "local"
LOCAL_ACCOUNT = "000000000000"


def local_arn(resource: str) -> str:
    """A local ARN shaped like SageMaker's (``resource``: ``model-package/group/1``...), so ARN-parsing
    code behaves the same on both engines."""
    return f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{resource}"


class InvalidName(ValueError):
    """A name that is not of its kind's format, or a path that would leave its folder."""


@dataclass(frozen=True)
class NameKind:
    """One kind of name: what to call it in an error, its pattern and the rule in words."""

    what: str
    pattern: re.Pattern[str]
    rule: str

    def check(self, value: object) -> str:
        """``value`` when it is a valid name of this kind, else :class:`InvalidName` in one line."""
        text = value if isinstance(value, str) else ""
        if not self.pattern.fullmatch(text):
            shown = repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:77]}...'"
            raise InvalidName(f"{shown} is not a valid {self.what}: {self.rule}")
        return text


_SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_SAGEMAKER_RULE = "1-63 letters, digits and hyphens, starting and ending with a letter or digit"

#: EndpointName, as CreateEndpoint accepts it.
ENDPOINT = NameKind("endpoint name", _SAGEMAKER_NAME, _SAGEMAKER_RULE)
#: ModelPackageGroupName, as CreateModelPackageGroup accepts it.
PACKAGE_GROUP = NameKind("model package group", _SAGEMAKER_NAME, _SAGEMAKER_RULE)
#: ModelName / EndpointConfigName (the local control plane keeps one file per name).
RESOURCE = NameKind("model or endpoint config name", _SAGEMAKER_NAME, _SAGEMAKER_RULE)
#: A local execution id (``20250101-120000-a1b2c3``) or any id of that alphabet.
EXECUTION_ID = NameKind(
    "execution id",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"),
    "letters, digits, '-' and '_' (like 20250101-120000-a1b2c3; `dogpipe executions list` shows them)",
)
#: An execution as a command takes it: a local id, a SageMaker execution id or its ARN.
EXECUTION_REF = NameKind(
    "execution",
    re.compile(
        r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
        r"|arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:pipeline/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}"
        r"/execution/[a-z0-9]{1,256}"
    ),
    "a local execution id, a SageMaker execution id or its ARN (`dogpipe executions list` shows them)",
)
#: A pipeline step name, as the definition schema allows it (also a folder of the execution).
STEP = NameKind("step name", re.compile(r"[A-Za-z0-9_-]{1,64}"), "1-64 letters, digits, '-' and '_'")
#: A model package version.
VERSION = NameKind("model package version", re.compile(r"[1-9][0-9]{0,8}"), "a positive integer")


def check_version(value: str | int) -> int:
    """A model package version as typed (``3``), or :class:`InvalidName`."""
    return int(VERSION.check(str(value) if isinstance(value, int) else value))


def path_under(folder: Path | str, *parts: str) -> Path:
    """``folder/part/...``, refused unless it stays inside ``folder`` once resolved (symlinks too)."""
    base = Path(folder)
    target = base.joinpath(*parts)
    if not target.resolve().is_relative_to(base.resolve()):
        raise InvalidName(f"{'/'.join(parts)!r} would leave {base}: refused")
    return target
