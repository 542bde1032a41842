"""The seed's example app ("Prometheus Example", a Flask REST API) on the
promwasm Python SDK: read it beside the Flask app's routes.py. The default
HTTP metrics (flask_http_request_total, ...) come from the host.

Build (from the repository root):
    .venv/bin/componentize-py -d wit -w route-handler componentize -p sdk/python -p examples/python app -o example-python.wasm
Serve:
    promwasm --component example-python.wasm
"""

from answers import is_even, num_value, square

from promwasm import App, request

app = App(prefix="flask")

total_auths = app.counter(
    "flask_app_total_auths", "Total number of authentications by user", labels=["user"]
)
even_numbers = app.histogram(
    "flask_app_even_numbers",
    "Distribution of the numbers sent to /even",
    buckets=[1, 10, 100, 1000, 10000, 100000],
)
app.info("flask_app", "Example app version", version="0.1.0")
app.in_progress("flask_request_in_progress", "Number of requests in progress per path")


@app.before_request
def authenticate():
    """Counts every routed request by its `user` header."""
    total_auths.labels(request.headers.get("user", "anonymous")).inc()


@app.route("/")
def index():
    return "Hello! This is an example app for demonstrating prometheus metrics collection"


@app.route("/healthz", track=False)
def healthz():
    return "Success"


@app.route("/square")
def get_square():
    num, error = num_value(request.args.get("num"))
    if error:
        return error, 400
    return square(num)


@app.route("/even")
def get_even():
    num, error = num_value(request.args.get("num"))
    if error:
        return error, 400
    # A negative observation would make the histogram's _sum negative,
    # which OpenMetrics forbids.
    if num >= 0:
        even_numbers.observe(num)
    return is_even(num)


# The component's export, which the host calls.
Handler = app.export()
