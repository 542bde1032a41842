//! What a handler answers, and what it may return.

/// An answer. Without a `content-type` header the host sends `text/plain;
/// charset=utf-8`.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An empty answer with `status`; add to it with [`Response::header`]
    /// and [`Response::body`].
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }
}

/// What a handler may return: a body (`&str`, `String`: 200), a
/// `(status, body)` pair, a [`Response`], or a `Result` of any of these,
/// whose `Err` the host answers 500 and counts as an exception.
pub trait IntoResponse {
    fn into_response(self) -> Result<Response, String>;
}

impl IntoResponse for Response {
    fn into_response(self) -> Result<Response, String> {
        Ok(self)
    }
}

impl IntoResponse for &str {
    fn into_response(self) -> Result<Response, String> {
        Ok(Response::new(200).body(self))
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Result<Response, String> {
        Ok(Response::new(200).body(self))
    }
}

impl IntoResponse for (u16, &str) {
    fn into_response(self) -> Result<Response, String> {
        Ok(Response::new(self.0).body(self.1))
    }
}

impl IntoResponse for (u16, String) {
    fn into_response(self) -> Result<Response, String> {
        Ok(Response::new(self.0).body(self.1))
    }
}

impl<T: IntoResponse, E: std::fmt::Display> IntoResponse for Result<T, E> {
    fn into_response(self) -> Result<Response, String> {
        self.map_err(|e| e.to_string())?.into_response()
    }
}
