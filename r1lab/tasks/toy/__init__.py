"""The embedded default world: a tiny bilingual world with a reasoning task, general-purpose and
harmful prompts, a corpus to pretrain a base model on, and its own tokenizer."""
