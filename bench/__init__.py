"""recoverctl's benchmark suite: recoverctl against the raw playbook and the physical limit.

Run it from the repository root: `python -m bench [--size small|large] [--repeat N]`
(see bench/README.md).
"""
