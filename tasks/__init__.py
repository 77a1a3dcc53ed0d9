"""The benchmark catalogue: one module per benchmark family.

``REGISTRY`` maps a task name to ``"module:attribute"``; ``SUITES`` name groups of tasks.
Both are literals so that listing them imports nothing heavy.
"""

REGISTRY: dict[str, str] = {
    "xcopa": "glotbench.tasks.xcopa:TASK",
    "xstorycloze": "glotbench.tasks.xstorycloze:TASK",
    "xwinograd": "glotbench.tasks.xwinograd:TASK",
    "mgsm": "glotbench.tasks.mgsm:TASK",
    "global_mmlu": "glotbench.tasks.global_mmlu:TASK",
    "global_mmlu_lite": "glotbench.tasks.global_mmlu:TASK_LITE",
    "include": "glotbench.tasks.include:TASK_COT",
    "include_loglik": "glotbench.tasks.include:TASK_LOGLIK",
    "flores": "glotbench.tasks.flores:TASK",
    "flores_5shot": "glotbench.tasks.flores:TASK_FEWSHOT",
    "m_arenahard": "glotbench.tasks.arena:TASK",
    "dolly": "glotbench.tasks.dolly:TASK",
    "dolly_human": "glotbench.tasks.dolly:TASK_HUMAN",
}

SUITES: dict[str, tuple[str, ...]] = {
    # The report's "discriminative" column: 0-shot log-likelihood accuracy.
    "discriminative": ("xcopa", "xstorycloze", "xwinograd"),
    "math": ("mgsm",),
    "knowledge": ("global_mmlu", "include"),
    "translation": ("flores",),
    # Open-ended generation, scored pairwise by `glotbench judge`.
    "open_ended": ("m_arenahard", "dolly"),
    # Everything the default `glotbench run` tries (tasks without local data are skipped).
    "offline": ("xcopa", "xstorycloze", "xwinograd", "mgsm", "flores", "m_arenahard"),
}
