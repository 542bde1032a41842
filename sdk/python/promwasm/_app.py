"""The app: routes, hooks and metrics declared with decorators, and the
component export that serves them."""

import re

from ._metrics import DEFAULT_BUCKETS, Counter, Gauge, Histogram, Info
from ._request import Request, _Current

_FLASK_PARAM = re.compile(r"<([^<>]*)>")


def _template(path):
    """The host's template for a route path: Flask's ``<name>`` becomes
    ``{name}``. Converters (``<int:id>``) are refused: the host matches
    whole segments and the handler converts."""

    def param(match):
        name = match.group(1)
        if not name.isidentifier():
            raise ValueError(
                f"route {path!r}: <{name}> is not a parameter name; converters such as "
                "<int:id> are not supported, convert in the handler"
            )
        return "{" + name + "}"

    return _FLASK_PARAM.sub(param, path)


class Response:
    """An answer. Without a ``content-type`` header the host sends
    ``text/plain; charset=utf-8``."""

    def __init__(self, body=b"", status=200, headers=None):
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        self.status = status
        pairs = headers.items() if isinstance(headers, dict) else headers or []
        self.headers = [(str(name), str(value)) for name, value in pairs]


def _response(value):
    """What a handler returned, as Flask reads it: a body (``str`` or
    ``bytes``), ``(body, status)``, ``(body, status, headers)`` or a
    `Response`."""
    if isinstance(value, Response):
        return value
    if isinstance(value, (str, bytes)):
        return Response(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], (dict, list)):
        return Response(value[0], 200, value[1])  # Flask's (body, headers)
    if isinstance(value, tuple) and len(value) in (2, 3):
        return Response(*value)
    raise TypeError(
        f"a handler returned {type(value).__name__}; return a str, bytes, "
        "(body, status), (body, headers), (body, status, headers) or a Response"
    )


class App:
    """One component's routes and metrics.

    ``prefix`` names the default HTTP families (``flask`` gives
    ``flask_http_request_total``, ...); none gives the bare names."""

    def __init__(self, prefix=None):
        self.prefix = prefix
        self.routes = []  # (methods, template, track, view)
        self.metrics = []
        self.gauges = []  # (name, help, route): host-measured in-progress gauges
        self.hooks = []

    def route(self, path, methods=("GET",), track=True):
        """Registers the decorated function for ``path``; it is called with
        the route's ``<name>`` segments as keyword arguments. ``track=False``
        leaves the route out of the default HTTP metrics, as
        ``@metrics.do_not_track()`` does."""
        template = _template(path)
        if isinstance(methods, str):
            raise TypeError(f"route {path!r}: methods is a list of names, such as [{methods!r}]")
        methods = [m.upper() for m in methods]

        def register(view):
            self.routes.append((methods, template, track, view))
            return view

        return register

    def before_request(self, hook):
        """Runs the decorated function before every route's handler; when it
        returns something, that is the answer and the handler is not run."""
        self.hooks.append(hook)
        return hook

    def _declare(self, metric_type, *args):
        metric = metric_type(len(self.metrics), *args)
        self.metrics.append(metric)
        return metric

    def counter(self, name, help, labels=()):
        """A counter exposed as ``<name>_total``; a trailing ``_total`` in
        ``name`` is dropped, as prometheus_client drops it."""
        return self._declare(Counter, name.removesuffix("_total"), help, labels)

    def gauge(self, name, help, labels=()):
        return self._declare(Gauge, name, help, labels)

    def histogram(self, name, help, labels=(), buckets=DEFAULT_BUCKETS):
        """A histogram; the host adds the ``+Inf`` bucket."""
        buckets = [b for b in buckets if b != float("inf")]
        return self._declare(Histogram, name, help, labels, buckets)

    def info(self, name, help, /, **values):
        """An info metric ``<name>_info`` with these label values."""
        return self._declare(Info, name.removesuffix("_info"), help, values)

    def in_progress(self, name, help, route=None):
        """A gauge of the requests in progress per path, kept by the host
        around each call (for every route, or the one template given)."""
        self.gauges.append((name, help, route and _template(route)))

    def dispatch(self, index, request):
        """Answers a request the host matched to the route at ``index``."""
        if not 0 <= index < len(self.routes):
            raise LookupError(f"the host matched route {index}, which the app does not have")
        _Current._request = request
        try:
            for hook in self.hooks:
                answer = hook()
                if answer is not None:
                    return _response(answer)
            return _response(self.routes[index][3](**request.view_args))
        finally:
            _Current._request = None

    def export(self):
        """The class componentize-py exports as ``promwasm:app/handler``:
        assign it to ``Handler`` in the app's module."""
        from ._component import handler_class

        return handler_class(self)
