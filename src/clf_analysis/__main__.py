import sys

from clf_analysis.cli import main

sys.exit(main())
