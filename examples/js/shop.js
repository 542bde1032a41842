// The app of the README's "In JavaScript": the Rust SDK's shop app
// (sdk/rust/examples/shop.rs) on the JavaScript SDK. The README's text is
// between the markers (tests/example.rs checks they agree); the tests build
// it (tests/lang-examples) and serve it as they serve the Rust one.

// README begin
import { App } from '../../sdk/js/promwasm.js';

const app = new App({ prefix: 'shop' }); // shop_http_request_total, ...
const orders = app.counter('shop_orders', 'Orders by item', { labels: ['item'] });
const basket = app.histogram('shop_basket_items', 'Items per order', { buckets: [1, 5, 20] });
app.inProgress('shop_in_progress', 'Requests in progress per path');

// Runs before every handler, as Flask's before_request.
app.beforeRequest((req) => {
  if (!req.headers.has('api-key')) return { status: 401, body: 'an api-key header, please' };
});

app.get('/healthz', () => 'ok', { track: false });

app.post('/orders/:item', (req) => {
  const count = wholeNumber(req.query.get('count') ?? '1');
  if (count === null) return { status: 400, body: 'count is a whole number' };
  orders.labels(req.params.item).inc(count);
  basket.observe(count);
  return { status: 201, body: `ordered ${count} x ${req.params.item}` };
});

// `text` as Rust reads a u32 (`+5` is 5), or null.
function wholeNumber(text) {
  const digits = /^\+?([0-9]+)$/.exec(text)?.[1];
  return digits !== undefined && Number(digits) <= 0xffffffff ? Number(digits) : null;
}

export const handler = app.handler(); // the component's export, which the host calls
// README end
