"""The local server's GUI: `ServerService` (starts/stops `OpenlidServer` off the GUI thread and
re-emits its requests and tokens as queued signals), `ServerPanel` (the dock: form, status,
snippets and the request log) and `RequestLogView` (requests, their exact prompts and tokens).

Everything here lives on the GUI thread except the service's named control threads. The main
window creates one `ServerService`, passes it to `ServerPanel`, and calls
`service.shutdown()` in its `closeEvent`.
"""

from desktop.ui.server.request_log import RequestLogView
from desktop.ui.server.server_panel import ServerPanel
from desktop.ui.server.server_service import ServerConfig, ServerService

__all__ = ["RequestLogView", "ServerConfig", "ServerPanel", "ServerService"]
