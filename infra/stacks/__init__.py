"""One module per stack; stacks compose constructs and grant permissions, nothing else."""
