"""Multilingual data arbitrage: a pool of teachers answers each prompt, a scorer (reward
model, pairwise judge or custom callable) scores every completion, a router keeps the best
(Odumakinde et al. 2024; Aya Expanse report §2.1). Output: SFT data and preference pairs."""
