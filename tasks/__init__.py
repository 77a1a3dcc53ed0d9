"""The benchmark catalogue: one module per benchmark family.

``REGISTRY`` maps a task name to ``"module:attribute"``; ``SUITES`` name groups of tasks.
Both are literals so that listing them imports nothing heavy.
"""

REGISTRY: dict[str, str] = {
    "xcopa": "tasks.xcopa:TASK",
    "xstorycloze": "tasks.xstorycloze:TASK",
    "xwinograd": "tasks.xwinograd:TASK",
    "mgsm": "tasks.mgsm:TASK",
    "global_mmlu": "tasks.global_mmlu:TASK",
    "global_mmlu_lite": "tasks.global_mmlu:TASK_LITE",
    "include": "tasks.include:TASK_COT",
    "include_loglik": "tasks.include:TASK_LOGLIK",
    "flores": "tasks.flores:TASK",
    "flores_5shot": "tasks.flores:TASK_FEWSHOT",
    "m_arenahard": "tasks.arena:TASK",
    "dolly": "tasks.dolly:TASK",
    "dolly_human": "tasks.dolly:TASK_HUMAN",
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
