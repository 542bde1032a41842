// The seed's example app ("Prometheus Example", a Flask REST API) on the
// promwasm JavaScript SDK: read it beside the Flask app's routes.py. The
// default HTTP metrics (flask_http_request_total, ...) come from the host.
//
// Build (from the repository root):
//   node_modules/.bin/componentize-js --wit wit --world-name route-handler -d http fetch-event -o example-js.wasm examples/js/app.js
// Serve:
//   promwasm --component example-js.wasm

import { App } from '../../sdk/js/promwasm.js';
import { isEven, numValue, square } from './answers.js';

const app = new App({ prefix: 'flask' });

const totalAuths = app.counter('flask_app_total_auths', 'Total number of authentications by user', {
  labels: ['user'],
});
const evenNumbers = app.histogram('flask_app_even_numbers', 'Distribution of the numbers sent to /even', {
  buckets: [1, 10, 100, 1000, 10000, 100000],
});
app.info('flask_app', 'Example app version', { version: '0.1.0' });
app.inProgress('flask_request_in_progress', 'Number of requests in progress per path');

// Counts every routed request by its `user` header.
app.beforeRequest((req) => {
  totalAuths.labels(req.headers.get('user') ?? 'anonymous').inc();
});

app.get('/', () => 'Hello! This is an example app for demonstrating prometheus metrics collection');

app.get('/healthz', () => 'Success', { track: false });

app.get('/square', (req) => {
  const { num, error } = numValue(req.query.get('num'));
  return error ? { status: 400, body: error } : square(num);
});

app.get('/even', (req) => {
  const { num, error } = numValue(req.query.get('num'));
  if (error) return { status: 400, body: error };
  // A negative observation would make the histogram's _sum negative, which
  // OpenMetrics forbids.
  if (num >= 0) evenNumbers.observe(num);
  return isEven(num);
});

// The component's export, which the host calls.
export const handler = app.handler();
