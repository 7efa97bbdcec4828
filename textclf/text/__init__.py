"""Tokenizer → tokens → vocabulary → batches: the field layer."""
