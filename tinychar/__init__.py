"""tinychar's machinery: what train.py, eval.py, generate.py, export.py and bench.py share, one job
a module. docs/architecture.md lists them in import order and follows a training step through them."""
