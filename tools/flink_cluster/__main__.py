"""``python -m tools.flink_cluster install|start [--detach]|status|stop``."""

import sys

from tools.flink_cluster.cli import main

sys.exit(main())
