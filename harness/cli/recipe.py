"""``glotbench recipe run RECIPE.yaml -o DIR``, ``glotbench recipe status DIR`` and ``glotbench recipe
report DIR -o report.html``: the post-training pipeline as one content-addressed, resumable graph of
``train`` stages and merges (training/recipe/), and its report. This module parses and delegates only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """examples:
  glotbench recipe run training/recipes/tiny-cpu.yaml -o results/recipe-tiny
  glotbench recipe status results/recipe-tiny
  glotbench recipe report results/recipe-tiny -o recipe-tiny.html
  (a rerun skips finished stages; an edited stage reruns with everything downstream of it;
  with eval: and gate: blocks every checkpoint stage is evaluated, judged against a fixed opponent
  and gated against the previous one: a failing gate under policy: stop exits 1)"""


def register(sub) -> None:
    rc = sub.add_parser("recipe", help="run a post-training recipe (a graph of train/merge stages), resumably",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = rc.add_subparsers(dest="recipe_verb", metavar="ACTION", required=True)
    run_p = verbs.add_parser("run", help="run the stages not yet finished, in dependency order", epilog=EXAMPLES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    run_p.add_argument("recipe", metavar="RECIPE.yaml", help="the recipe (docs: training/recipe/schema.py)")
    run_p.add_argument("-o", "--output", required=True, metavar="DIR",
                       help="recipe directory: one DIR/<stage>-<hash12>/ per stage and DIR/recipe.json")
    run_p.add_argument("--no-progress", action="store_true")
    run_p.set_defaults(func=run)
    st = verbs.add_parser("status", help="each stage's state, time, output hash and headline", epilog=EXAMPLES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_argument("directory", metavar="DIR", help="the -o directory of a recipe run")
    st.set_defaults(func=run)
    rp = verbs.add_parser("report", help="one self-contained HTML page: Figure 3 (win-rate per stage), the suite "
                          "per stage, the gate decisions and the lineage graph", epilog=EXAMPLES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_argument("directory", metavar="DIR", help="the -o directory of a recipe run")
    rp.add_argument("-o", "--output", required=True, metavar="report.html", help="HTML file to write")
    rp.add_argument("--title", default=None, help="page title (default: the recipe file and DIR)")
    rp.set_defaults(func=run)


def run(args) -> int:
    # The CLI sits above both layers: it reaches training/ through this verb (tests/test_layout.py).
    if args.recipe_verb == "status":
        from glotbench.training.recipe.status import status_text

        print(status_text(Path(args.directory)))
        return 0
    if args.recipe_verb == "report":
        from glotbench.harness.core.paths import check_writable
        from glotbench.training.recipe.report import recipe_report

        check_writable(Path(args.output))
        out = recipe_report(Path(args.directory), Path(args.output), args.title)
        print(f"recipe report written to {out['report']} ({out['points']} Figure-3 point(s), {out['stages']} "
              f"stage(s), {out['edges']} lineage edge(s))")
        return 0
    from glotbench.training.recipe.runner import run_recipe

    record = run_recipe(Path(args.recipe), Path(args.output),
                        progress=not args.no_progress and sys.stderr.isatty(), echo=lambda s: print(s, flush=True))
    ran = sum(1 for s in record["stages"].values() if s.get("state") == "done")
    if record.get("stopped"):  # the gate's verdict exit, as glotbench gate gives it
        stop = record["stopped"]
        print(f"recipe: stopped after {stop['stage']}: gate {stop['verdict']} against {stop['baseline']} "
              f"({ran}/{len(record['stages'])} stages done; glotbench recipe status {args.output})")
        return 1
    print(f"recipe: {ran}/{len(record['stages'])} stages done → {args.output} (glotbench recipe status {args.output})")
    return 0
