from offload.cli.main import main  # noqa: F401
