"""Run the test CNN in a real server process: ``python tests/serve/serve_cnn.py PORT [SLEEP_S]``.

Used by the lifecycle tests (SIGTERM drain, kill -9) that need a separate process. SLEEP_S
makes each batch slow so that requests are in flight when the signal comes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

from lepton.serve.app import LeptonApp, ModelSource, ServeOptions  # noqa: E402
from lepton.serve.server import run_app  # noqa: E402
from tests.serve.conftest import CNN, cnn_runner  # noqa: E402


class Slow(CNN):
    def __init__(self, sleep_s: float) -> None:
        super().__init__()
        self.sleep_s = sleep_s

    def forward(self, x):
        time.sleep(self.sleep_s)
        return super().forward(x)


def main() -> int:
    port, sleep_s = int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    app = LeptonApp([ModelSource("mnist", lambda: cnn_runner(module=Slow(sleep_s)))],
                    ServeOptions(drain_s=20))
    return run_app(app, "127.0.0.1", port)


if __name__ == "__main__":
    sys.exit(main())
