"""`python -m perfmodel.cli`: the perfmodel command line."""

import sys

from perfmodel.cli import main

sys.exit(main())
