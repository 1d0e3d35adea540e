"""Entry point: `python run.py COMMAND` (same as the `notifier` console script)."""
from notifier.cli import main

if __name__ == "__main__":
    main()
