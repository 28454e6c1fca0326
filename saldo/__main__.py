import sys

from saldo.cli import main

sys.exit(main())
