"""`python -m crab ...`: the same as the `crab` command."""

from crab.launch import main

if __name__ == "__main__":  # pragma: no cover
    main()
