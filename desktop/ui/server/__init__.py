"""The local server's GUI: `ServerService` (starts/stops `OpenlidServer` off the GUI thread and
re-emits its requests and tokens as queued signals), `ServerPanel` (the dock: form, status,
snippets and the request log; its form's parts in `server_form`) and `RequestLogView` (requests,
their exact prompts and tokens). `WindowEngineLender` (`engine_lender`) lends the window's engine
to a server that shares it.

Everything here lives on the GUI thread except the service's named control threads and the
lender's thread-safe methods (the server's handler threads call them). The main window creates
one `ServerService` with its `EngineService`, passes it to `ServerPanel`, and calls
`service.shutdown()` in its `closeEvent`.
"""

from desktop.ui.server.request_log import RequestLogView
from desktop.ui.server.server_panel import ServerPanel
from desktop.ui.server.server_service import ServerConfig, ServerService

__all__ = ["RequestLogView", "ServerConfig", "ServerPanel", "ServerService"]
