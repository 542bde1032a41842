"""The app's own metrics, in prometheus_client's shape: ``.labels(...)``
gives a child, ``.inc()``, ``.set()``, ``.observe()`` update it. Updates go
to the host by handle (the metric's position in the manifest)."""

# prometheus-flask-exporter's default latency buckets, also the default of
# `App.histogram`.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class Recorder:
    """Where updates go: the host's ``metrics`` import in a component
    (set by `App.export`), a list in native tests."""

    def __init__(self):
        self.updates = []

    def __call__(self, kind, handle, labels, value):
        self.updates.append((kind, handle, list(labels), value))


# Replaced with the host's import once the component's bindings are loaded.
record = Recorder()


def _labels(names, values, named):
    """Label values in declaration order from positional or keyword values."""
    if named:
        if values:
            raise ValueError("give label values by position or by name, not both")
        if set(named) != set(names):
            raise ValueError(f"labels are {list(names)}, got {sorted(named)}")
        return [str(named[name]) for name in names]
    return [str(value) for value in values]


class _Metric:
    kind = None

    def __init__(self, handle, name, help, labels):
        self.handle = handle
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self._values = []

    def labels(self, /, *values, **named):
        child = object.__new__(type(self))
        child.__dict__.update(self.__dict__)
        child._values = _labels(self.label_names, values, named)
        return child

    def _record(self, kind, value):
        record(kind, self.handle, self._values, float(value))


class Counter(_Metric):
    kind = "counter"

    def inc(self, amount=1):
        self._record("counter-add", amount)


class Gauge(_Metric):
    kind = "gauge"

    def set(self, value):
        self._record("gauge-set", value)

    def inc(self, amount=1):
        self._record("gauge-add", amount)

    def dec(self, amount=1):
        self._record("gauge-add", -amount)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, handle, name, help, labels, buckets):
        super().__init__(handle, name, help, labels)
        self.buckets = tuple(float(b) for b in buckets)

    def observe(self, value):
        self._record("histogram-observe", value)


class Info:
    """Exposed as ``<name>_info`` with value 1; never updated."""

    kind = "info"

    def __init__(self, handle, name, help, values):
        self.handle = handle
        self.name = name
        self.help = help
        self.label_names = tuple(values)
        self.values = tuple(str(v) for v in values.values())
