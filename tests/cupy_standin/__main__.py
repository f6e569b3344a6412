"""`python -m tests.cupy_standin ARGS`: `python -m minidl ARGS` with 'cuda' served by the stand-in
(the CLI tests run the command line in a subprocess)."""

from minidl.__main__ import main
from tests import cupy_standin

cupy_standin.install()
raise SystemExit(main())
