"""Translated-vs-native preference pairs: a strong model in language L against a weaker model's English answer translated into L."""
