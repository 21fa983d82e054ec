"""Placeholder, replaced below."""
from jupyter_server.extension.application import ExtensionApp


class OffloadExtensionApp(ExtensionApp):
    name = "jupyter_ext"
