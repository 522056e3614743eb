"""`python -m salx.datasets.synthetic`: see `salx.datasets.synthetic.command`."""

import sys

from salx.datasets.synthetic import command

if __name__ == "__main__":
  sys.exit(command.main())
