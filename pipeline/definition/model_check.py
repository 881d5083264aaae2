"""The config's model architecture, checked against torchvision before any job runs.

``config.py`` loads without torch, so it cannot know torchvision's model names; a typo in
``model.architecture`` would otherwise surface only inside the first training job, after a paid
processing job on SageMaker. ``dogpipe validate`` and ``dogpipe upsert`` call
:func:`architecture_problem` first. ``dogpipe run`` does not: importing torchvision costs about 7 s
here, as much as the local Preprocess step a typo lets run before Tune names it.
"""

from __future__ import annotations

import difflib

from pipeline.config import ModelConfig


def classification_models() -> list[str]:
    """torchvision's classification model names, kept per torchvision version in the answer cache (the
    import costs seconds; the list changes only with the version)."""
    import json

    from pipeline.answer_cache import cached_text, digest, versions

    def listed() -> str:
        from torchvision import models as tv_models

        return json.dumps(tv_models.list_models(module=tv_models))

    return json.loads(cached_text("torchvision-models", digest(versions("torchvision")), listed))


def architecture_problem(model: ModelConfig) -> str | None:
    """Why ``model.architecture`` cannot be built (with the closest names), or None when it can."""
    known = classification_models()
    if model.architecture in known:
        return None
    close = difflib.get_close_matches(model.architecture, known, n=3)
    hint = (
        f"; did you mean {' or '.join(close)}?" if close else f"; choose one of: {', '.join(sorted(known))}"
    )
    return f"model.architecture {model.architecture!r} is not a torchvision classification model{hint}"
