"""glotbench training: post-training stages that consume the harness and produce checkpoints.

One sub-package per stage of the Aya Expanse recipe: ``merge/`` today; arbitrage, SFT,
preference training and the recipe runner go beside it. The harness never imports this package.
"""
