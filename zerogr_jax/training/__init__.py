"""Training: retriever rows from an index (`pairs`), the per-process input pipeline (`input_pipeline`), configs,
train state and the sharded train step (`step`), checkpoints with exact resume (`checkpoints`) and the loop and
`zerogr train` stage (`loop`)."""
