// Write promwasm route handlers in JavaScript, as Express routes: routes and
// metrics by name, handlers as plain functions. The host records the
// default HTTP metrics (`<prefix>_http_request_total`, ...) for every route,
// as prometheus-flask-exporter does for a Flask app; an app declares only
// the metrics that are its own.
//
//     import { App } from './promwasm.js';
//
//     const app = new App({ prefix: 'app' });
//     const hellos = app.counter('app_hellos', 'Greetings by user', { labels: ['user'] });
//
//     app.get('/hello/:name', (req) => {
//       hellos.labels(req.params.name).inc();
//       return req.query.get('shout') === 'yes'
//         ? `HELLO, ${req.params.name.toUpperCase()}!`
//         : `Hello, ${req.params.name}!`;
//     });
//     app.get('/healthz', () => 'ok', { track: false });
//
//     // The component's export, which the host calls.
//     export const handler = app.handler();
//
// Build it with componentize-js (from @bytecodealliance/componentize-js):
//
//     componentize-js --wit wit --world-name route-handler -d http fetch-event -o app.wasm app.js
//
// The module runs once, when componentize-js builds the component: routes
// and metrics are declared then, and every request starts from that
// snapshot.
//
// - Routes are matched by the host (an exact path before a template); a path
//   no route takes is answered 404 or 405 without entering the guest.
// - A metric update the host refuses (a wrong label count, a negative
//   increment) is dropped and counted by the host in
//   `promwasm_metric_update_errors_total`; the handler goes on.
// - A handler that throws is answered 500 and counted in
//   `<prefix>_http_request_exceptions_total`; the error goes to the host's
//   log, never to the client.

import {
  counterAdd,
  gaugeSet,
  gaugeAdd,
  histogramObserve,
} from 'promwasm:app/metrics@0.2.0';

/** prometheus-flask-exporter's default latency buckets. */
export const DEFAULT_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];

const encoder = new TextEncoder();

/** Sends one update; a refusal is the host's to count, and is dropped. */
function record(update, handle, labels, value) {
  try {
    update(handle, labels, value);
  } catch (error) {
    // The host refused it (a `metric-error` as the error's payload) and
    // counted it: the handler goes on. Anything else is the handler's.
    if (error?.payload === undefined) throw error;
  }
}

class Metric {
  constructor(handle, name, help, kind, labelNames) {
    this.handle = handle;
    this.name = name;
    this.help = help;
    this.kind = kind;
    this.labelNames = labelNames;
    this.values = [];
  }

  /** The child for these label values, in declared order. */
  labels(...values) {
    const child = Object.create(Object.getPrototypeOf(this));
    Object.assign(child, this, { values: values.map(String) });
    return child;
  }
}

class Counter extends Metric {
  inc(amount = 1) {
    record(counterAdd, this.handle, this.values, amount);
  }
}

class Gauge extends Metric {
  set(value) {
    record(gaugeSet, this.handle, this.values, value);
  }
  inc(amount = 1) {
    record(gaugeAdd, this.handle, this.values, amount);
  }
  dec(amount = 1) {
    record(gaugeAdd, this.handle, this.values, -amount);
  }
}

class Histogram extends Metric {
  observe(value) {
    record(histogramObserve, this.handle, this.values, value);
  }
}

/** The request's headers by case-insensitive name. */
export class Headers {
  constructor(block) {
    // One "name: value\n" line per header from the host, names in lower case.
    this.pairs = [];
    for (const line of block.split('\n')) {
      const colon = line.indexOf(': ');
      if (colon > 0) this.pairs.push([line.slice(0, colon), line.slice(colon + 2)]);
    }
  }

  /** The first value of `name`, or null. */
  get(name) {
    const key = name.toLowerCase();
    const pair = this.pairs.find(([k]) => k === key);
    return pair ? pair[1] : null;
  }

  getAll(name) {
    const key = name.toLowerCase();
    return this.pairs.filter(([k]) => k === key).map(([, v]) => v);
  }

  has(name) {
    return this.get(name) !== null;
  }
}

/**
 * One request: `method`, `path` (percent-encoding kept), `queryString`,
 * `query` (URLSearchParams: `get` gives the first value, decoded as a form),
 * `headers`, `params` (the route's `:name` segments by name) and `body`
 * (a Uint8Array, empty when there is none).
 */
export class Request {
  constructor(incoming) {
    this.method = incoming.method;
    this.path = incoming.path;
    this.queryString = incoming.query;
    this.params = Object.fromEntries(incoming.params);
    this.body = incoming.body ?? new Uint8Array();
    this.headerBlock = incoming.headers;
  }

  /** Parsed on first use. */
  get query() {
    this.parsedQuery ??= new URLSearchParams(this.queryString);
    return this.parsedQuery;
  }

  /** Parsed on first use. */
  get headers() {
    this.parsedHeaders ??= new Headers(this.headerBlock);
    return this.parsedHeaders;
  }

  text() {
    return new TextDecoder().decode(this.body);
  }
}

/** The host's template: Express's `:name` becomes `{name}`. */
function template(path) {
  return path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
}

/**
 * What a handler returned: a body (string or Uint8Array, answered 200) or
 * `{ status, headers, body }`, `headers` an object, a Map or an array of
 * pairs. Without a `content-type` header the host sends `text/plain;
 * charset=utf-8`.
 */
function response(value) {
  if (typeof value?.then === 'function') {
    throw new TypeError('a handler returned a Promise; handlers and hooks are synchronous');
  }
  if (typeof value === 'string' || value instanceof Uint8Array) {
    value = { body: value };
  }
  if (value === null || typeof value !== 'object') {
    throw new TypeError(
      `a handler returned ${value}; return a string, a Uint8Array or { status, headers, body }`,
    );
  }
  const body = value.body ?? '';
  const headers = value.headers ?? {};
  const pairs = Array.isArray(headers) || headers instanceof Map ? [...headers] : Object.entries(headers);
  return {
    status: value.status ?? 200,
    headers: pairs.map(([name, text]) => [String(name), String(text)]),
    body: typeof body === 'string' ? encoder.encode(body) : body,
  };
}

/** One component's routes and metrics. */
export class App {
  /** `prefix` names the default HTTP families; none gives the bare names. */
  constructor({ prefix } = {}) {
    this.prefix = prefix;
    this.routes = [];
    this.metrics = [];
    this.gauges = [];
    this.hooks = [];
  }

  /**
   * Registers `view` for `path` and `methods`; `{ track: false }` leaves the
   * route out of the default HTTP metrics.
   */
  route(path, methods, view, { track = true } = {}) {
    this.routes.push({
      methods: methods.map((m) => m.toUpperCase()),
      path: template(path),
      track,
      view,
    });
    return this;
  }

  get(path, view, options) {
    return this.route(path, ['GET'], view, options);
  }

  post(path, view, options) {
    return this.route(path, ['POST'], view, options);
  }

  /**
   * Runs `hook(req)` before every route's handler; when it returns
   * something, that is the answer and the handler is not run.
   */
  beforeRequest(hook) {
    this.hooks.push(hook);
    return this;
  }

  declare(MetricClass, name, help, kind, labels) {
    const metric = new MetricClass(this.metrics.length, name, help, kind, labels);
    this.metrics.push(metric);
    return metric;
  }

  /** A counter exposed as `<name>_total`. */
  counter(name, help, { labels = [] } = {}) {
    return this.declare(Counter, name.replace(/_total$/, ''), help, { tag: 'counter' }, labels);
  }

  gauge(name, help, { labels = [] } = {}) {
    return this.declare(Gauge, name, help, { tag: 'gauge' }, labels);
  }

  /** A histogram; the host adds the `+Inf` bucket. */
  histogram(name, help, { labels = [], buckets = DEFAULT_BUCKETS } = {}) {
    const finite = buckets.filter((b) => b !== Infinity);
    return this.declare(Histogram, name, help, { tag: 'histogram', val: finite }, labels);
  }

  /** An info metric `<name>_info` with these label values. */
  info(name, help, values) {
    const kind = { tag: 'info', val: Object.values(values).map(String) };
    return this.declare(Metric, name.replace(/_info$/, ''), help, kind, Object.keys(values));
  }

  /**
   * A gauge of the requests in progress per path, kept by the host around
   * each call (for every route, or the one given).
   */
  inProgress(name, help, { route } = {}) {
    this.gauges.push({ name, help, route: route == null ? undefined : template(route) });
    return this;
  }

  /** Answers a request the host matched to the route at `index`. */
  dispatch(index, req) {
    const route = this.routes[index];
    if (!route) throw new Error(`the host matched route ${index}, which the app does not have`);
    for (const hook of this.hooks) {
      const answer = hook(req);
      if (answer !== undefined && answer !== null) return response(answer);
    }
    return response(route.view(req));
  }

  /** The manifest `describe` returns: positions are the host's indices. */
  manifest() {
    return {
      defaultPrefix: this.prefix,
      routes: this.routes.map(({ methods, path, track }) => ({ methods, path, track })),
      metrics: this.metrics.map(({ name, help, kind, labelNames }) => ({
        name,
        help,
        kind,
        labels: labelNames,
      })),
      hostMetrics: this.gauges.map(({ name, help, route }) => ({
        name,
        help,
        measure: 'in-progress',
        route,
      })),
    };
  }

  /** The `promwasm:app/handler` export: `export const handler = app.handler();`. */
  handler() {
    return {
      describe: () => this.manifest(),
      handle: (incoming) => {
        try {
          return this.dispatch(incoming.route, new Request(incoming));
        } catch (error) {
          throw error instanceof Error ? `${error}\n${error.stack}` : String(error);
        }
      },
    };
  }
}
