import sys

from convlab.cli import main

if __name__ == "__main__":  # not when a spawned grading process imports this module
    sys.exit(main())
