"""The Python SDK natively, without a component: routing declarations,
requests, answers and metric updates, as the host would see them. Run with
`python -m unittest discover -s sdk/python/tests` (tests/example.rs does)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from promwasm import App, Request, Response, request  # noqa: E402
from promwasm import _metrics  # noqa: E402


def incoming(query="", headers="", body=None, params=(), method="GET", path="/"):
    return Request(method, path, query, headers, body, list(params))


class Declarations(unittest.TestCase):
    def test_routes_keep_their_order_and_flask_parameters_become_templates(self):
        app = App(prefix="shop")

        @app.route("/orders/<item>", methods=["post", "PUT"])
        def order(item):
            return item

        @app.route("/healthz", track=False)
        def healthz():
            return "ok"

        self.assertEqual(
            [(m, p, t) for m, p, t, _ in app.routes],
            [(["POST", "PUT"], "/orders/{item}", True), (["GET"], "/healthz", False)],
        )

    def test_a_converter_is_refused_naming_the_route(self):
        app = App()
        with self.assertRaisesRegex(ValueError, r"route '/users/<int:id>': <int:id> is not a parameter name"):
            app.route("/users/<int:id>")

    def test_metrics_are_declared_in_order_with_prometheus_clients_names(self):
        app = App()
        hits = app.counter("app_hits_total", "Hits", labels=["user"])
        level = app.gauge("app_level", "Level")
        sizes = app.histogram("app_sizes", "Sizes", buckets=[1, 2, float("inf")])
        info = app.info("app_info", "Build", version="1.2", commit="abc")
        self.assertEqual([m.handle for m in app.metrics], [0, 1, 2, 3])
        self.assertEqual((hits.name, hits.label_names), ("app_hits", ("user",)))
        self.assertEqual(level.kind, "gauge")
        self.assertEqual(sizes.buckets, (1.0, 2.0))
        self.assertEqual((info.name, info.label_names, info.values), ("app", ("version", "commit"), ("1.2", "abc")))


class Requests(unittest.TestCase):
    def test_args_decode_as_flask_and_the_first_value_wins(self):
        args = incoming(query="num=%32%30&num=3&q=a+b&empty=&bad=%zz").args
        self.assertEqual(args.get("num"), "20")
        self.assertEqual(args.getlist("num"), ["20", "3"])
        self.assertEqual(args["q"], "a b")
        self.assertEqual(args.get("empty"), "")
        self.assertEqual(args.get("bad"), "%zz")
        self.assertEqual(args.get("num", type=int), 20)
        self.assertEqual(args.get("q", 7, type=int), 7)
        self.assertIsNone(args.get("missing"))
        self.assertIn("q", args)
        self.assertEqual(list(args), ["num", "q", "empty", "bad"])

    def test_headers_ignore_case_and_keep_every_value(self):
        headers = incoming(headers="user: ann\naccept: a\naccept: b\n").headers
        self.assertEqual(headers.get("User"), "ann")
        self.assertEqual(headers["ACCEPT"], "a")
        self.assertEqual(headers.getlist("accept"), ["a", "b"])
        self.assertEqual(headers.get("missing", "anonymous"), "anonymous")
        self.assertNotIn("missing", headers)
        self.assertEqual(len(headers), 3)

    def test_body_query_string_and_view_args(self):
        req = incoming(query="a=1", body=b"hi", params=[("item", "tea")])
        self.assertEqual((req.data, req.get_data(as_text=True)), (b"hi", "hi"))
        self.assertEqual(req.query_string, b"a=1")
        self.assertEqual(req.view_args, {"item": "tea"})
        self.assertEqual(incoming().data, b"")


class Dispatch(unittest.TestCase):
    def setUp(self):
        _metrics.record = _metrics.Recorder()
        self.app = App(prefix="shop")
        self.orders = self.app.counter("shop_orders", "Orders", labels=["item"])
        app = self.app

        @app.before_request
        def require_key():
            if "api-key" not in request.headers:
                return "an api-key, please", 401

        @app.route("/orders/<item>", methods=["POST"])
        def order(item):
            self.orders.labels(item).inc(int(request.args.get("count", "1")))
            return f"ordered {item}", 201, {"location": f"/orders/{item}"}

        @app.route("/raw")
        def raw():
            return b"\x00\x01"

        @app.route("/none")
        def none():
            return None

    def test_a_handler_gets_its_parameters_and_its_updates_reach_the_host(self):
        answer = self.app.dispatch(0, incoming(query="count=2", headers="api-key: k\n", params=[("item", "tea")]))
        self.assertEqual((answer.status, answer.body, answer.headers), (201, b"ordered tea", [("location", "/orders/tea")]))
        self.assertEqual(_metrics.record.updates, [("counter-add", 0, ["tea"], 2.0)])

    def test_the_hook_answers_first_and_the_handler_is_not_run(self):
        answer = self.app.dispatch(0, incoming(params=[("item", "tea")]))
        self.assertEqual((answer.status, answer.body), (401, b"an api-key, please"))
        self.assertEqual(_metrics.record.updates, [])

    def test_bytes_are_a_body_and_none_is_an_error(self):
        self.assertEqual(self.app.dispatch(1, incoming(headers="api-key: k\n")).body, b"\x00\x01")
        with self.assertRaisesRegex(TypeError, "a handler returned NoneType"):
            self.app.dispatch(2, incoming(headers="api-key: k\n"))

    def test_an_unknown_route_index_is_an_error_and_request_is_unset_after(self):
        with self.assertRaisesRegex(LookupError, "the host matched route 9, which the app does not have"):
            self.app.dispatch(9, incoming())
        with self.assertRaisesRegex(RuntimeError, "only set while a request is answered"):
            request.headers

    def test_labels_by_name_and_by_position(self):
        self.orders.labels(item="tea").inc()
        self.orders.labels("tea").inc(3)
        with self.assertRaisesRegex(ValueError, r"labels are \['item'\], got \['user'\]"):
            self.orders.labels(user="x")
        self.assertEqual(
            _metrics.record.updates, [("counter-add", 0, ["tea"], 1.0), ("counter-add", 0, ["tea"], 3.0)]
        )

    def test_flask_answer_shapes_and_header_values_as_text(self):
        from promwasm._app import _response

        answer = _response(("made", {"x-n": 3}))
        self.assertEqual((answer.status, answer.body, answer.headers), (200, b"made", [("x-n", "3")]))
        answer = _response(("gone", 410, [("x-a", 1)]))
        self.assertEqual((answer.status, answer.headers), (410, [("x-a", "1")]))

    def test_methods_as_one_string_and_labels_named_like_parameters(self):
        app = App()
        with self.assertRaisesRegex(TypeError, r"route '/x': methods is a list of names, such as \['POST'\]"):
            app.route("/x", methods="POST")
        info = app.info("app_build", "Build", name="promwasm", help="none")
        self.assertEqual((info.label_names, info.values), (("name", "help"), ("promwasm", "none")))
        gauge = app.gauge("app_level", "Level", labels=["self"])
        gauge.labels(self="a").set(2)
        self.assertEqual(_metrics.record.updates[-1], ("gauge-set", 1, ["a"], 2.0))

    def test_a_response_object_passes_through(self):
        response = Response("made", 202, [("x-a", "1")])
        self.assertEqual((response.status, response.body, response.headers), (202, b"made", [("x-a", "1")]))


if __name__ == "__main__":
    unittest.main()
