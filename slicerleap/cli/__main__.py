"""`python -m slicerleap.cli ...`: the `slicerleap` command without its console script."""
import sys

from . import main

sys.exit(main())
