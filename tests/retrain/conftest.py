from tests.monitor.conftest import store, workspace  # noqa: F401 - the same real store
