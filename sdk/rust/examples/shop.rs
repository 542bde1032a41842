// The app of the README's "Writing another component", run natively:
// `cargo run -p promwasm-sdk --example shop`. Between the markers, the
// README's text (`tests/readme.rs` checks they agree); the tests serve it
// as a component too (`tests/fixtures/shop`).

// README begin
use promwasm_sdk::{App, Counter, Histogram, Request, Response, get, post};

static ORDERS: Counter = Counter::new("shop_orders", "Orders by item", &["item"]);
static BASKET: Histogram = Histogram::new(
    "shop_basket_items",
    "Items per order",
    &[],
    &[1.0, 5.0, 20.0],
);

fn app() -> App {
    App::new()
        .default_prefix("shop") // shop_http_request_total, ...
        .metric(&ORDERS)
        .metric(&BASKET)
        .in_progress("shop_in_progress", "Requests in progress per path")
        // Runs before every handler, as Flask's before_request.
        .before_request(|request: &Request| {
            match request.header("api-key") {
                Some(_) => None, // go on to the handler
                None => Some(Response::new(401).body("an api-key header, please")),
            }
        })
        .route(get("/healthz").do_not_track(), |_: &Request| "ok")
        .route(post("/orders/{item}"), order)
}

fn order(request: &Request) -> Result<(u16, String), String> {
    let item = request.param("item").unwrap_or_default();
    let count: u32 = match request.query("count").as_deref().unwrap_or("1").parse() {
        Ok(count) => count,
        Err(_) => return Ok((400, "count is a whole number".to_string())),
    };
    ORDERS.inc_by(&[item], f64::from(count));
    BASKET.observe(f64::from(count));
    Ok((201, format!("ordered {count} x {item}")))
}

promwasm_sdk::export_app!(app());
// README end

#[cfg(not(target_arch = "wasm32"))]
pub fn main() {
    use promwasm_sdk::testing::{call, take_updates};
    let app = app();
    let key = [("api-key", "k")];
    let answer = call(&app, "POST", "/orders/tea?count=2", &key)
        .unwrap()
        .unwrap();
    assert_eq!(
        (answer.status, answer.body),
        (201, b"ordered 2 x tea".to_vec())
    );
    let refused = call(&app, "POST", "/orders/tea", &[]).unwrap().unwrap();
    assert_eq!(refused.status, 401);
    let bad = call(&app, "POST", "/orders/tea?count=x", &key)
        .unwrap()
        .unwrap();
    assert_eq!(
        (bad.status, bad.body),
        (400, b"count is a whole number".to_vec())
    );
    let updates: Vec<_> = take_updates()
        .into_iter()
        .map(|u| (u.handle, u.labels, u.value))
        .collect();
    assert_eq!(
        updates,
        [(0, vec!["tea".to_string()], 2.0), (1, vec![], 2.0)]
    );
    println!("the README's shop answers as documented");
}
