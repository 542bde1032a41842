# The app of the README's "In Python": the Rust SDK's shop app
# (sdk/rust/examples/shop.rs) on the Python SDK. The README's text is
# between the markers (tests/example.rs checks they agree); the tests build
# it (tests/lang-examples) and serve it as they serve the Rust one.

# README begin
from promwasm import App, request

app = App(prefix="shop")  # shop_http_request_total, ...
orders = app.counter("shop_orders", "Orders by item", labels=["item"])
basket = app.histogram("shop_basket_items", "Items per order", buckets=[1, 5, 20])
app.in_progress("shop_in_progress", "Requests in progress per path")


@app.before_request  # runs before every handler, as in Flask
def require_key():
    if "api-key" not in request.headers:
        return "an api-key header, please", 401


@app.route("/healthz", track=False)  # @metrics.do_not_track()
def healthz():
    return "ok"


@app.route("/orders/<item>", methods=["POST"])
def order(item):
    count = whole_number(request.args.get("count", "1"))
    if count is None:
        return "count is a whole number", 400
    orders.labels(item).inc(count)
    basket.observe(count)
    return f"ordered {count} x {item}", 201


def whole_number(text):
    """`text` as Rust reads a u32 (`+5` is 5), or None."""
    digits = text.removeprefix("+")
    if digits.isascii() and digits.isdigit() and int(digits) <= 0xFFFF_FFFF:
        return int(digits)
    return None


Handler = app.export()  # the component's export, which the host calls
# README end
