"""The request a handler answers, in Flask's names."""

from urllib.parse import parse_qsl


class Args:
    """The query's parameters, decoded as Flask decodes them
    (``application/x-www-form-urlencoded``: ``+`` is a space, ``%32`` is
    ``2``); ``get`` gives the first value of a name, as Flask's does."""

    def __init__(self, query):
        self._pairs = parse_qsl(query, keep_blank_values=True)

    def get(self, name, default=None, type=None):
        for key, value in self._pairs:
            if key == name:
                if type is None:
                    return value
                try:
                    return type(value)
                except ValueError:
                    return default
        return default

    def getlist(self, name):
        return [value for key, value in self._pairs if key == name]

    def __getitem__(self, name):
        for key, value in self._pairs:
            if key == name:
                return value
        raise KeyError(name)

    def __contains__(self, name):
        return any(key == name for key, _ in self._pairs)

    def __iter__(self):
        return iter(dict.fromkeys(key for key, _ in self._pairs))

    def items(self):
        return list(self._pairs)


class Headers:
    """The request's headers by case-insensitive name; ``get`` gives the
    first value, ``getlist`` every one, in the order they came."""

    def __init__(self, block):
        # The host hands one "name: value\n" line per header, names in lower
        # case; a value holds no line break.
        self._pairs = []
        for line in block.split("\n"):
            name, sep, value = line.partition(": ")
            if sep:
                self._pairs.append((name, value))

    def get(self, name, default=None):
        name = name.lower()
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def getlist(self, name):
        name = name.lower()
        return [value for key, value in self._pairs if key == name]

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name):
        return self.get(name) is not None

    def __iter__(self):
        return iter(self._pairs)

    def __len__(self):
        return len(self._pairs)


class Request:
    """One request: ``method``, ``path`` (percent-encoding kept),
    ``query_string`` (bytes, as Flask's), ``args``, ``headers``,
    ``view_args`` (the route's ``<name>`` segments by name) and ``data``
    (the body, ``b""`` when there is none)."""

    def __init__(self, method, path, query, headers, body, params):
        self.method = method
        self.path = path
        self._query = query
        self._headers = headers
        self._args = None
        self.data = body or b""
        self.view_args = dict(params)

    @property
    def query_string(self):
        return self._query.encode()

    @property
    def args(self):
        if self._args is None:
            self._args = Args(self._query)
        return self._args

    @property
    def headers(self):
        if isinstance(self._headers, str):
            self._headers = Headers(self._headers)
        return self._headers

    def get_data(self, as_text=False):
        return self.data.decode("utf-8", "replace") if as_text else self.data


class _Current:
    """``promwasm.request``: the request being answered, as Flask's
    ``request`` is; one instance answers one request at a time."""

    _request = None

    def __getattr__(self, name):
        if _Current._request is None:
            raise RuntimeError("promwasm.request is only set while a request is answered")
        return getattr(_Current._request, name)


request = _Current()
