import sys

from snn_energy.cli import main

sys.exit(main())
