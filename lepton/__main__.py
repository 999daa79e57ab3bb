import sys

from lepton.cli import main

sys.exit(main())
