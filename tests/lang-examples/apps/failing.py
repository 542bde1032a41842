# A Python app whose handlers fail on purpose, for the host's tests: an
# exception, an answer the SDK cannot send, and metric updates the host
# refuses.
from promwasm import App

app = App(prefix="failing")
hits = app.counter("failing_hits", "Hits by user", labels=["user"])


@app.route("/raise")
def fail():
    raise KeyError("deliberate failure")


@app.route("/none")
def none():
    return None


@app.route("/misuse")
def misuse():
    hits.labels("a", "b").inc()  # two values for one label
    hits.labels("a").inc(-1)  # a counter never goes down
    return "went on"


Handler = app.export()
