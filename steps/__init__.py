"""One builder per pipeline step: ``build_<step>(ctx, upstream steps...) -> Step`` in ``steps/<step>.py``.

``ctx`` is the :class:`steps.common.BuildContext` (config, session, code archive, parameters, role);
builders do no I/O and make no AWS call. ``pipeline/definition/build.py`` wires them into the DAG.
"""
