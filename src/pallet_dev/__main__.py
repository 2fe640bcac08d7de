"""`python -m pallet_dev` runs the CLI."""

from pallet_dev.entry import main

if __name__ == "__main__":
    main()
