"""``python -m mmsearch``."""

from mmsearch.cli import main

if __name__ == "__main__":
    main()
