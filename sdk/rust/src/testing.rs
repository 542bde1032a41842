//! Running an app natively, as the host would, to test it without a host:
//! [`call`] routes a request to its handler, and [`take_updates`] gives the
//! metric updates the handlers made on this thread.

use crate::app::App;
use crate::host::Update;
use crate::request::Request;
use crate::response::Response;

/// One metric update, as the host would receive it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub update: Update,
    /// The metric's position among the app's metrics.
    pub handle: u32,
    pub labels: Vec<String>,
    pub value: f64,
}

/// Sends `method target` (`/square?num=3`) with `headers` to the route the
/// host would match; none when no route takes it (the host's 404 or 405).
/// `Err` is the handler's error, which the host answers 500.
pub fn call(
    app: &App,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Option<Result<Response, String>> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (index, params) = app.find(method, path)?;
    let request = Request {
        method: method.to_string(),
        path: path.to_string(),
        query_string: query.to_string(),
        headers: (headers.iter())
            .map(|(n, v)| format!("{}: {v}\n", n.to_ascii_lowercase()))
            .collect(),
        params,
        ..Request::default()
    };
    Some(app.dispatch(index, request))
}

/// The updates recorded on this thread since the last call.
pub fn take_updates() -> Vec<Recorded> {
    crate::host::RECORDED.with(|recorded| std::mem::take(&mut *recorded.borrow_mut()))
}
