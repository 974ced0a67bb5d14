"""Making and judging synthesizers (docs/method.md §6): fine-tuning data, training, evaluation.

`data` converts context-based task datasets into records `{context, pairs, dataset, kind}`;
`train` turns them into few-shot sequences in the wire format with the loss on pair tokens
only and fine-tunes a causal LM (transformers Trainer, PEFT for LoRA); `evaluate` measures a
synthesizer on held-out records. `data` and the masking in `train` import no torch.
"""
