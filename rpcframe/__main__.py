import sys

from rpcframe.cli import main

sys.exit(main())
