"""Entry point kept from the legacy service: `python clf_analysis_api.py` serves the API."""

import sys

from clf_analysis.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
