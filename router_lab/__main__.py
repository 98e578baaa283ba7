import sys

from router_lab.cli import main

sys.exit(main())
