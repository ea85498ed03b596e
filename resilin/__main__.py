import sys

from resilin.cli import main

sys.exit(main())
