"""Root conftest: pytest-jupyter's server fixtures must be registered at the root."""

pytest_plugins = ["pytest_jupyter.jupyter_server"]
