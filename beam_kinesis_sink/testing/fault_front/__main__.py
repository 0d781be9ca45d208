"""``python -m beam_kinesis_sink.testing.fault_front``: see :mod:`.cli`."""

import sys

from beam_kinesis_sink.testing.fault_front.cli import main

sys.exit(main())
