"""`python -m notifier COMMAND`: the same program as `notifier` and `python run.py`."""
from .cli import main

main()
