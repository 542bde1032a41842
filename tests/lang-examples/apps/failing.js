// A JavaScript app whose handlers fail on purpose, for the host's tests: an
// exception, an answer the SDK cannot send, and metric updates the host
// refuses.
import { App } from '../../../sdk/js/promwasm.js';

const app = new App({ prefix: 'failing' });
const hits = app.counter('failing_hits', 'Hits by user', { labels: ['user'] });

app.get('/raise', () => {
  throw new RangeError('deliberate failure');
});
app.get('/none', () => null);
app.get('/misuse', () => {
  hits.labels('a', 'b').inc(); // two values for one label
  hits.labels('a').inc(-1); // a counter never goes down
  return 'went on';
});

export const handler = app.handler();
