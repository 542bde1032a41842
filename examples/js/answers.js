// The example's numbers read and written exactly as the Rust example
// (guest/, the reference) reads and writes them, so all three builds answer
// byte for byte alike: `num` follows Rust's float grammar (Number() would
// also take `0x10`, and an empty string as 0), and answers are Rust's `{:?}` of an f64
// (`400.0`, `1e16`; JavaScript writes `400` and `1e+16`).

// Rust's `f64::from_str`: a sign, then inf, infinity or nan in any case, or
// ASCII digits with an optional point and exponent.
const RUST_FLOAT = /^[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)$/i;

// What Rust's `str::trim` removes: the Unicode White_Space characters.
const WHITE_SPACE =
  /^[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/**
 * The `num` parameter's decoded value (null when absent) as a finite
 * number: `{ num }`, or `{ error }` with the 400 message.
 */
export function numValue(raw) {
  if (!raw) return { error: "Missing request parameter 'num'!" };
  const text = raw.replace(WHITE_SPACE, '');
  if (!RUST_FLOAT.test(text)) return { error: `Request parameter 'num' is not a number: '${raw}'` };
  const lower = text.toLowerCase().replace(/^[+-]/, '');
  const num = lower === 'inf' || lower === 'infinity' || lower === 'nan' ? NaN : Number(text);
  if (!Number.isFinite(num)) return { error: `Request parameter 'num' must be finite, got '${raw}'` };
  return { num };
}

/**
 * Rust's `{:?}` of an f64: the shortest digits that read back as `x`, in
 * positional notation from 1e-4 up to 1e16 (with `.0` when whole), in
 * exponent notation outside it.
 */
export function rustDebug(x) {
  if (Number.isNaN(x)) return 'NaN';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  x = Math.abs(x);
  if (x === Infinity) return `${sign}inf`;
  if (x === 0) return `${sign}0.0`;
  // toExponential() without digits gives the shortest that round-trip.
  const [mantissa, exp] = x.toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const point = Number(exp) + 1; // x = 0.DIGITS * 10**point
  if (x >= 1e-4 && x < 1e16) {
    if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
    if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
  return `${sign}${digits[0]}${fraction}e${point - 1}`;
}

/** The answer of /square: the square, or 400 when it is not finite. */
export function square(num) {
  const result = num * num;
  if (Number.isFinite(result)) return { body: rustDebug(result) };
  return { status: 400, body: `The square of ${rustDebug(num)} is too large to represent` };
}

/** The answer of /even, as Rust's `num % 2.0 == 0.0` gives it. */
export function isEven(num) {
  return num % 2 === 0 ? 'true' : 'false';
}
