"""Write promwasm route handlers as Flask routes.

The host records the default HTTP metrics (``<prefix>_http_request_total``,
...) for every route, as prometheus-flask-exporter does for a Flask app; an
app declares only the metrics that are its own::

    from promwasm import App, request

    app = App(prefix="app")
    hellos = app.counter("app_hellos", "Greetings by user", labels=["user"])

    @app.route("/hello/<name>")
    def hello(name):
        hellos.labels(name).inc()
        if request.args.get("shout") == "yes":
            return f"HELLO, {name.upper()}!"
        return f"Hello, {name}!"

    @app.route("/healthz", track=False)
    def healthz():
        return "ok"

    # The component's export, which the host calls.
    Handler = app.export()

Build it with componentize-py (``-p`` names the directories to import
from)::

    componentize-py -d wit -w route-handler componentize -p sdk/python -p . app -o app.wasm

The module runs once, when componentize-py builds the component: routes
and metrics are declared then, and every request starts from that
snapshot. What a handler changes in module state does not outlive its
request unless the host reuses instances (``--instance-reuse``).

- Routes are matched by the host (an exact path before a template); a path
  no route takes is answered 404 or 405 without entering the guest.
- A metric update the host refuses (a wrong label count, a negative
  increment) is dropped and counted by the host in
  ``promwasm_metric_update_errors_total``; the handler goes on.
- An exception in a handler is answered 500 and counted in
  ``<prefix>_http_request_exceptions_total``; its traceback goes to the
  host's log, never to the client.
"""

from ._app import App, Response
from ._request import Headers, Args, Request, request

__all__ = ["App", "Args", "Headers", "Request", "Response", "request"]
