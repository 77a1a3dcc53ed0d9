"""The examples that end each verb's ``--help`` (kept apart so the CLI module stays thin)."""

RUN_EXAMPLES = """examples:
  glotbench run                                   # offline suite, embedded SmolLM2-135M-Instruct
  glotbench run --tasks xcopa --langs et,zh --limit 50
  glotbench run --tasks mgsm --langs en,de --limit 20 --chat off
  glotbench run --tasks global_mmlu --data hub --langs fr,hi --batch-size 32
  glotbench run --tasks flores --langs deu_Latn-eng_Latn,eng_Latn-deu_Latn --limit 50
  glotbench run --tasks flores --xcomet --device cuda   # + xCOMET-XL (isolated COMET env)
  glotbench run --model hf:/models/aya-expanse-8b --device cuda --batch-size 32
  glotbench run --tasks xstorycloze --data hub    # needs the Hugging Face hub
  glotbench run --data-dir ../shared/data --output results/my-run
"""


JUDGE_EXAMPLES = """examples:
  glotbench run --tasks m_arenahard --model hf:/models/a --output results/a
  glotbench run --tasks m_arenahard --model hf:/models/b --output results/b
  glotbench judge --a results/a --b results/b                 # GPT-4o, Aya 101 prompt, both orders
  glotbench judge --a results/a --b results/b --judge openai:Qwen/Qwen2.5-72B-Instruct \\
      --judge-base-url http://localhost:8000/v1 --concurrency 64
  glotbench judge --a results/a --b results/b results/c --rpm 500 --tpm 300000
  glotbench judge --a results/a --b results/b --judge embedded --limit 5   # offline smoke test
  glotbench judge --a results/a --b results/b --judge rm:results/rm-alpacaeval   # a reward model as judge
"""


GATE_EXAMPLES = """examples:
  glotbench gate --baseline results/reference --candidate results/new
  glotbench gate --baseline results/base --candidate results/new --policy gate.yaml --markdown comment.md
  glotbench gate --baseline results/base --candidate results/new --judgments results/judge-base-vs-new
  glotbench gate --baseline results/base --sequential --model hf:/ckpt/step-2000
"""


MERGE_EXAMPLES = """examples:
  glotbench merge merge.yaml -o ckpt/merged            # configs: docs/merging.md
  glotbench merge merge.yaml -o ckpt/merged --dry-run  # check config and inputs, write nothing
  glotbench merge merge.yaml -o ckpt/merged --device cuda --overwrite
  glotbench run --model hf:ckpt/merged                 # evaluate the merge

merge.yaml:
  merge_method: linear          # linear | slerp | task_arithmetic | ties | dare_ties | dare_linear
  models:
    - {model: ckpt/cluster-a, parameters: {weight: 0.6}}
    - {model: ckpt/cluster-b, parameters: {weight: 0.4}}
"""

TRAIN_EXAMPLES = """examples:
  glotbench train reward training/recipes/examples/reward-alpacaeval.yaml -o results/rm-alpacaeval
  glotbench train arbitrage training/recipes/examples/arbitrage-alpacaeval.yaml -o results/arbitrage-alpacaeval
  glotbench train sft training/recipes/examples/sft-embedded.yaml -o results/sft-embedded
  glotbench train sft sft.yaml -o ckpt/sft --accelerate-config training/recipes/accelerate/ddp-cpu-gloo.yaml
  glotbench run --model hf:results/sft-embedded --tasks xcopa --limit 5   # lineage in provenance
  glotbench train dpo training/recipes/examples/dpo-embedded.yaml -o results/dpo-embedded
  glotbench train online-dpo training/recipes/examples/online-dpo-tiny.yaml -o results/online-dpo-tiny
  glotbench train translated-pairs training/recipes/examples/translated-pairs-embedded.yaml -o results/translated-pairs

configs and outputs: docs/training.md
"""
