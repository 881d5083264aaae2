"""Rewrite ``tests/golden/definition.json`` from ``config/pipeline.yaml`` (``make golden``).

The training code's SHA-256 appears in code URIs; it is replaced by ``CODE_SHA256_PLACEHOLDER`` so the
golden file changes only when the *pipeline* changes, not on every edit of ``training_code/``. Review
the diff of this file like code: it is exactly what SageMaker receives.
"""

from __future__ import annotations

from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "definition.json"
DEPLOY_GOLDEN = Path(__file__).resolve().parent / "deploy_definition.json"
CODE_SHA256_PLACEHOLDER = "0" * 64


def golden_text() -> str:
    """The definition of the shipped SageMaker config, code hash normalised."""
    from pipeline.config import DEFAULT_CONFIG, load_config
    from pipeline.definition.code import package_code
    from pipeline.definition.document import build_definition

    code = package_code()
    text = build_definition(load_config(DEFAULT_CONFIG), code=code)
    return text.replace(code.sha256, CODE_SHA256_PLACEHOLDER)


def deploy_golden_text() -> str:
    """The deploy pipeline's definition (``<project>-deploy``) of the shipped SageMaker config."""
    from pipeline.config import DEFAULT_CONFIG, load_config
    from pipeline.definition.code import package_code
    from pipeline.definition.deploy_pipeline import build_deploy_definition

    code = package_code()
    text = build_deploy_definition(load_config(DEFAULT_CONFIG), code=code)
    return text.replace(code.sha256, CODE_SHA256_PLACEHOLDER)


def main() -> None:
    GOLDEN.write_text(golden_text())
    print(f"wrote {GOLDEN}")
    DEPLOY_GOLDEN.write_text(deploy_golden_text())
    print(f"wrote {DEPLOY_GOLDEN}")


if __name__ == "__main__":
    main()
